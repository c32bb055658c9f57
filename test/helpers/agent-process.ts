/**
 * Real agents for tests: `vos daemon` processes in throw-away state directories, the `vos`
 * command as a user runs it, and API clients. Everything started here is stopped by `stop()`,
 * the sessions' terminal hosts (which outlive agents) included.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ApiClient } from '../../src-main/api/client.js';
import { connectToAgent } from '../../src-main/client/socket-transport.js';
import { statePaths, type StatePaths } from '../../src-main/base/state-dir.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const VOS = join(ROOT, 'bin', 'vos.js');

/** A fresh, short state directory (Unix socket paths are limited to 107 bytes). */
export function tempHome(): string {
  return mkdtempSync('/tmp/vos-test-');
}

/** The process runs (it exists and is not a zombie). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

export async function waitFor<T>(what: string, probe: () => T | Promise<T>, timeoutMs = 20_000, everyMs = 25): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The terminal hosts (`vos-init host`) serving sessions of the state directory `home`. */
export function hostPids(home: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (/\) Z /.test(readFileSync(`/proc/${entry}/stat`, 'utf8'))) continue; // a zombie is over
    } catch {
      continue; // gone meanwhile
    }
    const socket = argv[argv.indexOf('--socket') + 1] ?? '';
    if (argv[0]?.endsWith('vos-init') && argv[1] === 'host' && socket.startsWith(`${home}/`)) pids.push(Number(entry));
  }
  return pids;
}

/**
 * Ends every session of `home` by ending its terminal host (SIGTERM: the host hangs up its
 * program, kills it after a second, and exits), and waits until they are gone.
 */
export async function endHosts(home: string): Promise<void> {
  const signal = (pid: number, sig: NodeJS.Signals): void => {
    try {
      process.kill(pid, sig);
    } catch {
      /* already gone */
    }
  };
  for (const pid of hostPids(home)) signal(pid, 'SIGTERM');
  try {
    await waitFor(`the terminal hosts of ${home} to end`, () => hostPids(home).length === 0, 5000);
  } catch {
    for (const pid of hostPids(home)) signal(pid, 'SIGKILL');
    await waitFor(`the terminal hosts of ${home} to die`, () => hostPids(home).length === 0, 5000);
  }
}

export interface DaemonHandle {
  home: string;
  paths: StatePaths;
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  connect(): Promise<ApiClient>;
  /**
   * SIGTERM, then SIGKILL after a grace period; then ends the sessions' terminal hosts and
   * removes the state directory, unless `keepHome` (then the sessions go on, for the next agent).
   */
  stop(options?: { keepHome?: boolean }): Promise<void>;
}

/** An unprivileged user to run agents as when the tests run as root. */
export const UNPRIVILEGED = { name: 'nobody', uid: 65534, gid: 65534 };

export async function startDaemon(
  options: {
    home?: string;
    args?: string[];
    env?: NodeJS.ProcessEnv;
    asUser?: typeof UNPRIVILEGED;
    /**
     * Root only: the agent (and so its sessions) runs in a mount namespace of its own, set up by
     * this shell command first (a tmpfs over a directory: a machine whose files there differ).
     * The namespace goes with the last of its processes.
     */
    mountPrelude?: string;
  } = {},
): Promise<DaemonHandle> {
  const home = options.home ?? tempHome();
  const user = options.asUser;
  if (user) chownSync(home, user.uid, user.gid);
  const agent = user
    ? ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', process.execPath, VOS, 'daemon']
    : [process.execPath, VOS, 'daemon'];
  const command = options.mountPrelude
    ? ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', `${options.mountPrelude} && exec "$0" "$@"`, ...agent]
    : agent;
  const proc = spawn(command[0]!, [...command.slice(1), ...(options.args ?? [])], {
    env: { ...process.env, ...(user ? { HOME: home } : {}), ...options.env, VOS_HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const clients: ApiClient[] = [];
  const handle: DaemonHandle = {
    home,
    paths: statePaths(home),
    proc,
    stdout: () => out,
    stderr: () => err,
    async connect() {
      const c = await connectToAgent(statePaths(home).socket, 'test');
      clients.push(c);
      return c;
    },
    async stop({ keepHome = false } = {}) {
      for (const c of clients) c.close();
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      if (!keepHome) {
        await endHosts(home);
        rmSync(home, { recursive: true, force: true });
      }
    },
  };
  try {
    // Its startup lines, the web UI's address too when asked for.
    const web = options.args?.includes('--web') ?? false;
    const started = (): boolean => out.includes('running (pid') && (!web || /web UI: \S+\n/.test(out));
    await waitFor('the agent to listen', () => started() || proc.exitCode !== null, 15_000);
    if (proc.exitCode !== null) throw new Error(`vos daemon exited with ${proc.exitCode}: ${err}`);
  } catch (e) {
    await handle.stop();
    throw e;
  }
  return handle;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `vos ARGS...` as a user would, with VOS_HOME set. */
export function vos(home: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [VOS, ...args],
      { env: { ...process.env, ...env, VOS_HOME: home }, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
