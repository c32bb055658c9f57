/**
 * Starting an agent in the background when none runs (as `tmux` starts its server): a detached
 * `vos daemon` that logs to agent.log in the state directory (capped: see agent/agent-log.ts).
 */
import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import type { ApiClient } from '../api/client.js';
import { VosError } from '../api/errors.js';
import { cliEntry } from '../base/package-paths.js';
import { ensurePrivateDir, type StatePaths } from '../base/state-dir.js';
import { connectToAgent } from './socket-transport.js';

const START_TIMEOUT_MS = 10_000;

export async function connectOrStartAgent(paths: StatePaths, clientName: string): Promise<ApiClient> {
  try {
    return await connectToAgent(paths.socket, clientName);
  } catch (err) {
    if (!(err instanceof VosError) || err.code !== 'no_agent') throw err;
  }
  ensurePrivateDir(paths.home);
  const log = openSync(paths.log, 'a', 0o600);
  let exited: string | null = null;
  try {
    // The daemon writes its log itself (--log), with a size cap and rate limits; its stdout and
    // stderr go to the same file for what does not pass through the log (a crash's last words).
    const child = spawn(process.execPath, [cliEntry(), 'daemon', '--log', paths.log], {
      detached: true,
      stdio: ['ignore', log, log],
      env: { ...process.env, VOS_HOME: paths.home },
    });
    child.on('exit', (code, signal) => {
      exited = signal ?? `exit status ${code}`;
    });
    child.unref();
  } finally {
    closeSync(log);
  }
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    try {
      return await connectToAgent(paths.socket, clientName);
    } catch (err) {
      if (!(err instanceof VosError) || err.code !== 'no_agent') throw err;
      if (exited) throw new VosError('no_agent', `the background agent failed to start (${exited}); see ${paths.log}`);
      if (Date.now() > deadline) throw new VosError('no_agent', `the background agent did not start within ${START_TIMEOUT_MS / 1000} s; see ${paths.log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
