/**
 * Global setup: the test programs (test/runtime/programs, C) are built once per run, into a
 * directory of their own, instead of once by every file that needs them (about twenty `make`
 * runs of the same programs). Each file gets a copy of its own (test/helpers/test-programs.ts
 * fillTestPrograms), so a file may add programs or remove its directory without touching the
 * others'. Sanitizer runs build them with the same flags as before (PROGRAMS_MAKE_ARGS).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The test programs, built once for the run (a directory no test may change). */
    testPrograms: string;
  }
}

const SRC = join(resolve(dirname(fileURLToPath(import.meta.url)), '..'), 'test', 'runtime', 'programs');
// As in test/helpers/runtime-dir.ts (PROGRAMS_MAKE_ARGS): a sanitizer run gives the programs trapping UBSan.
const MAKE_ARGS = process.env.VOS_TEST_SANITIZE === '1' ? ['EXTRA_CFLAGS=-fsanitize=undefined -fsanitize-undefined-trap-on-error'] : [];

let built: string | null = null;

export function setup(project: TestProject): void {
  built = mkdtempSync('/tmp/vos-programs-run-');
  chmodSync(built, 0o755); // the tests that run as nobody execute them too
  execFileSync('make', ['-s', '-j2', '-C', SRC, `OUT=${built}`, ...MAKE_ARGS], { stdio: 'inherit' });
  project.provide('testPrograms', built);
}

export function teardown(): void {
  if (built) rmSync(built, { recursive: true, force: true });
  built = null;
}
