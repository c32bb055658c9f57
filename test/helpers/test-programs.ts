/**
 * What the runtime's test files share: the test programs (test/runtime/programs, C) built into a
 * directory of their own, and who the tests run as (root and an ordinary user when root: users
 * are not root, and the runtime must work unprivileged).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';
import { ROOT, UNPRIVILEGED } from './agent-process.js';
import { PROGRAMS_MAKE_ARGS } from './runtime-dir.js';

export const PROGRAMS_SRC = join(ROOT, 'test', 'runtime', 'programs');

/**
 * Puts the test programs into `dir` (made if missing): a copy of those the run built once
 * (test/programs-setup.ts), or, without that (a file run under another configuration), built
 * here. The directory is the caller's: it may add to it and must remove it.
 */
export function fillTestPrograms(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const built = inject('testPrograms');
  if (built && existsSync(built)) cpSync(built, dir, { recursive: true });
  else execFileSync('make', ['-s', '-C', PROGRAMS_SRC, `OUT=${dir}`, ...PROGRAMS_MAKE_ARGS], { stdio: 'inherit' });
}

/** The test programs in a new directory (readable by the ordinary user too); its path. */
export function buildTestPrograms(prefix = '/tmp/vos-programs-'): string {
  const dir = mkdtempSync(prefix);
  chmodSync(dir, 0o755);
  fillTestPrograms(dir);
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
