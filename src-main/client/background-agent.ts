/**
 * Starting an agent in the background when none runs (as `tmux` starts its server): a detached
 * `vos daemon` that logs to agent.log in the state directory (capped: see agent/agent-log.ts).
 * The CLI uses it through `connectOrStartAgent`; the app's supervisor (agent-supervisor.ts)
 * through `spawnBackgroundAgent` and `waitForAgent`.
 */
import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import type { ApiClient } from '../api/client.js';
import { VosError } from '../api/errors.js';
import { cliEntry } from '../base/package-paths.js';
import { ensurePrivateDir, type StatePaths } from '../base/state-dir.js';
import { connectToAgent } from './socket-transport.js';

export const START_TIMEOUT_MS = 10_000;

/** How to run `vos daemon`: which Node (Electron runs it with ELECTRON_RUN_AS_NODE), what else. */
export interface AgentLaunch {
  /** The Node binary; default: this process's. */
  execPath?: string;
  /** Added to this process's environment (VOS_HOME is always the state directory's). */
  env?: NodeJS.ProcessEnv;
  /** More arguments for `vos daemon` (e.g. --name). */
  args?: string[];
}

/** A `vos daemon` started here, detached: it outlives this process. */
export interface StartedAgent {
  pid: number;
  /** How it ended (`exit status N` or a signal name), while this process still sees it; else null. */
  exited(): string | null;
  /** Called once when it ends, with how, while this process runs. */
  onExit(listener: (how: string) => void): void;
}

export function spawnBackgroundAgent(paths: StatePaths, launch: AgentLaunch = {}): StartedAgent {
  ensurePrivateDir(paths.home);
  const log = openSync(paths.log, 'a', 0o600);
  let exited: string | null = null;
  const listeners: Array<(how: string) => void> = [];
  try {
    // The daemon writes its log itself (--log), with a size cap and rate limits; its stdout and
    // stderr go to the same file for what does not pass through the log (a crash's last words).
    const child = spawn(launch.execPath ?? process.execPath, [cliEntry(), 'daemon', '--log', paths.log, ...(launch.args ?? [])], {
      detached: true,
      stdio: ['ignore', log, log],
      env: { ...process.env, ...launch.env, VOS_HOME: paths.home },
    });
    child.on('error', (err) => {
      exited ??= `could not be started: ${err.message}`;
      for (const l of listeners) l(exited);
    });
    child.on('exit', (code, signal) => {
      exited = signal ?? `exit status ${code}`;
      for (const l of listeners) l(exited);
    });
    child.unref();
    return {
      pid: child.pid ?? 0,
      exited: () => exited,
      onExit: (l) => listeners.push(l),
    };
  } finally {
    closeSync(log);
  }
}

/** Connects once the agent `started` listens; fails when it ends first or takes too long. */
export async function waitForAgent(paths: StatePaths, clientName: string, started: StartedAgent, timeoutMs = START_TIMEOUT_MS): Promise<ApiClient> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await connectToAgent(paths.socket, clientName);
    } catch (err) {
      if (!(err instanceof VosError) || err.code !== 'no_agent') throw err;
      const exited = started.exited();
      if (exited) throw new VosError('no_agent', `the background agent failed to start (${exited}); see ${paths.log}`);
      if (Date.now() > deadline) throw new VosError('no_agent', `the background agent did not start within ${timeoutMs / 1000} s; see ${paths.log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function connectOrStartAgent(paths: StatePaths, clientName: string, launch: AgentLaunch = {}): Promise<ApiClient> {
  try {
    return await connectToAgent(paths.socket, clientName);
  } catch (err) {
    if (!(err instanceof VosError) || err.code !== 'no_agent') throw err;
  }
  return waitForAgent(paths, clientName, spawnBackgroundAgent(paths, launch));
}
