/**
 * Recovery benchmark (`npm run bench:recovery`): the time from an agent's start to all of 50
 * running sessions listed with their screens. 50 sessions are started under an agent, the agent
 * is stopped (SIGTERM: the sessions run on under their terminal hosts), and a new agent of the
 * same state directory is started; measured from its spawn until the socket answers (every
 * session has been adopted by then), until `session.list` shows all of them running, and until
 * `session.screen` of each has answered with the session's own line. Repeated BENCH_RUNS times
 * (default 3) with the same sessions; prints each run and the median.
 *
 * Environment: BENCH_RUNS (3), BENCH_SESSIONS (50).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import type { ApiClient } from '../src-main/api/client.js';
import { cliEntry } from '../src-main/base/package-paths.js';
import { statePaths } from '../src-main/base/state-dir.js';
import { connectToAgent } from '../src-main/client/socket-transport.js';
import { median, until } from './lib.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 50);

interface Running {
  proc: ChildProcess;
  client: ApiClient;
  /** From spawn to the socket answering. */
  listeningMs: number;
  spawnedAt: number;
}

async function startAgent(home: string): Promise<Running> {
  const spawnedAt = performance.now();
  const proc = spawn(process.execPath, [cliEntry(), 'daemon', '--name', 'bench-recovery'], {
    env: { ...process.env, VOS_HOME: home, VOS_MDNS: '0', VOS_LISTEN: 'none' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  // Its log is kept for when something goes wrong, not printed between the numbers.
  let log = '';
  proc.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-8192)));
  proc.once('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGTERM') process.stderr.write(`the agent ended (${code ?? signal}); its log ends with:\n${log}`);
  });
  const client = await until(
    'the agent to answer',
    async () => {
      if (proc.exitCode !== null) throw new Error(`the agent exited with ${proc.exitCode}`);
      return connectToAgent(statePaths(home).socket, 'bench').catch(() => null);
    },
    60_000,
    5,
  );
  return { proc, client, listeningMs: performance.now() - spawnedAt, spawnedAt };
}

async function stopAgent(a: Running): Promise<void> {
  a.client.close();
  if (a.proc.exitCode !== null || a.proc.signalCode !== null) return;
  const exited = new Promise((r) => a.proc.once('exit', r));
  a.proc.kill('SIGTERM');
  await exited;
}

async function main(): Promise<void> {
  const home = mkdtempSync('/tmp/vos-bench-r-');
  let agent = await startAgent(home);
  const ids: string[] = [];
  try {
    const started = performance.now();
    for (let i = 0; i < SESSIONS; i++) {
      const s = await agent.client.request('session.create', { command: 'sh', args: ['-c', `echo ready-${i}; exec sleep 100000`], name: `s${i}` });
      ids.push(s.id);
    }
    for (const [i, id] of ids.entries()) await agent.client.request('session.wait', { id, pattern: `^ready-${i}$`, timeoutMs: 60_000 });
    console.log(`${SESSIONS} sessions started and showing their first line in ${((performance.now() - started) / 1000).toFixed(1)} s`);

    const rows: { listening: number; listed: number; screens: number }[] = [];
    for (let run = 1; run <= RUNS; run++) {
      await stopAgent(agent);
      agent = await startAgent(home);
      const { client, spawnedAt } = agent;
      await until(
        `all ${SESSIONS} sessions listed running`,
        async () => {
          const list = await client.request('session.list', {});
          return list.filter((s) => s.state === 'running' && ids.includes(s.id)).length === SESSIONS;
        },
        60_000,
        5,
      );
      const listed = performance.now() - spawnedAt;
      await Promise.all(
        ids.map(async (id, i) => {
          const screen = await client.request('session.screen', { id });
          if (screen.lines[0] !== `ready-${i}`) throw new Error(`session ${id} shows ${JSON.stringify(screen.lines[0])}, not ready-${i}`);
        }),
      );
      const screens = performance.now() - spawnedAt;
      rows.push({ listening: agent.listeningMs, listed, screens });
      console.log(
        `run ${run}: agent answering after ${agent.listeningMs.toFixed(0)} ms; all ${SESSIONS} listed running after ${listed.toFixed(0)} ms; every screen answered after ${screens.toFixed(0)} ms`,
      );
    }
    console.log(
      `median of ${RUNS}: answering ${median(rows.map((r) => r.listening)).toFixed(0)} ms, listed ${median(rows.map((r) => r.listed)).toFixed(0)} ms, ` +
        `screens ${median(rows.map((r) => r.screens)).toFixed(0)} ms (from the agent's spawn; Node's own start included)`,
    );
  } finally {
    for (const id of ids) await agent.client.request('session.remove', { id, force: true }).catch(() => undefined);
    await stopAgent(agent);
    rmSync(home, { recursive: true, force: true });
  }
}

await main();
