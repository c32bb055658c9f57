/**
 * Global teardown: a test run must leave no session behind. Sessions outlive their agent (each
 * has a terminal host), so a test that removes its state directory without ending its sessions
 * leaves programs running. Any terminal host of a test's state directory (`/tmp/vos-test-*`,
 * made by tempHome) of this checkout's runtime that started during the run and still runs at
 * its end is ended here, and the run fails, naming it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// The runtime the tests use: out/runtime, or VOS_RUNTIME_DIR (test/helpers/runtime-dir.ts).
const RUNTIME = (process.env.VOS_RUNTIME_DIR ?? join(resolve(dirname(fileURLToPath(import.meta.url)), '..'), 'out', 'runtime')) + '/';

function leakedHosts(): { pid: number; socket: string }[] {
  const found: { pid: number; socket: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (/\) Z /.test(readFileSync(`/proc/${entry}/stat`, 'utf8'))) continue; // over already
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      const socket = argv[argv.indexOf('--socket') + 1] ?? '';
      if (argv[0]?.startsWith(RUNTIME) && argv[1] === 'host' && socket.startsWith('/tmp/vos-test-')) found.push({ pid: Number(entry), socket });
    } catch {
      /* gone meanwhile */
    }
  }
  return found;
}

/** Hosts there before the run (another run's, or left by an interrupted one): not this run's. */
let before = new Set<number>();

export function setup(): void {
  before = new Set(leakedHosts().map((h) => h.pid));
}

export function teardown(): void {
  const leaked = leakedHosts().filter((h) => !before.has(h.pid));
  for (const { pid } of leaked) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  if (leaked.length > 0) {
    process.exitCode = 1; // vitest reports an error thrown here but would still exit 0
    throw new Error(`the tests left ${leaked.length} session(s) running (ended now): ${leaked.map((l) => l.socket).join(', ')}`);
  }
}
