/**
 * What the runtime's test files share: the test programs (test/runtime/programs, C) built into a
 * directory of their own, and who the tests run as (root and an ordinary user when root: users
 * are not root, and the runtime must work unprivileged).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, UNPRIVILEGED } from './agent-process.js';
import { PROGRAMS_MAKE_ARGS } from './runtime-dir.js';

export const PROGRAMS_SRC = join(ROOT, 'test', 'runtime', 'programs');

/** Builds the test programs into a new directory (readable by the ordinary user too); its path. */
export function buildTestPrograms(prefix = '/tmp/vos-programs-'): string {
  const dir = mkdtempSync(prefix);
  chmodSync(dir, 0o755);
  execFileSync('make', ['-s', '-C', PROGRAMS_SRC, `OUT=${dir}`, ...PROGRAMS_MAKE_ARGS], { stdio: 'inherit' });
  return dir;
}

export interface RunAs {
  who: string;
  user: typeof UNPRIVILEGED | null;
}

/** Root and nobody when root; otherwise the current user only, which `what` prints. */
export function runAsUsers(what: string): RunAs[] {
  if (process.getuid?.() === 0) return [{ who: 'root', user: null }, { who: 'nobody', user: UNPRIVILEGED }];
  console.log(`${what} run as the current user only (not root: no second user to run as)`);
  return [{ who: 'this user', user: null }];
}
