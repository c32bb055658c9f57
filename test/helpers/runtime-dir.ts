/**
 * Where the tests find the built runtime (vos-init, libvos.so): out/runtime, or VOS_RUNTIME_DIR
 * when it is set; the agent (src-main/agent/runtime/native.ts) reads the same variable, so the
 * tests and the agents they start use one build. `npm run test:sanitize` points it at the
 * sanitizer build (out/runtime-asan).
 */
import { join } from 'node:path';
import { ROOT } from './agent-process.js';

export const RUNTIME_DIR = process.env.VOS_RUNTIME_DIR ?? join(ROOT, 'out', 'runtime');

/**
 * A sanitizer run (`npm run test:sanitize` sets VOS_TEST_SANITIZE=1): the tests' own C tools get
 * AddressSanitizer and UndefinedBehaviorSanitizer; the programs they checkpoint get trapping
 * UBSan only (ASan's shadow memory would be part of every image of them).
 */
export const SANITIZE = process.env.VOS_TEST_SANITIZE === '1';
export const TOOL_CFLAGS: string[] = SANITIZE ? ['-g', '-fno-omit-frame-pointer', '-fsanitize=address,undefined', '-fno-sanitize-recover=all'] : [];
export const PROGRAMS_MAKE_ARGS: string[] = SANITIZE ? ['EXTRA_CFLAGS=-fsanitize=undefined -fsanitize-undefined-trap-on-error'] : [];
