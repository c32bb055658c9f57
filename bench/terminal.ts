/**
 * Terminal path benchmarks (`npm run bench`): what the agent costs a viewer, measured against
 * node-pty used directly, in the same process and run.
 *
 * 1. Keystroke-to-echo latency: one character typed, until the program's echo of it arrives.
 *    The program is `cat` on a raw terminal, so every key makes a round trip through it.
 *      baseline: node-pty.write → pty → cat → pty → node-pty onData (this process)
 *      agent:    client → Unix socket → agent → pty → cat → pty → agent (mirror, batcher) →
 *                Unix socket → client (an attached viewer)
 * 2. Throughput: `cat` of a 100 MB text file, until the last byte reaches the viewer, against
 *    node-pty reading it directly and tmux with its client attached (issue 14's comparison: both
 *    parse everything into a screen), taking turns in each round.
 * 3. Four sessions flooding at once, each watched: the agent's event-loop delay (the screen
 *    mirrors parse in their own thread) and the round trip of an API request meanwhile.
 *
 * Environment: BENCH_SAMPLES (default 400), BENCH_MB (default 100), BENCH_ROUNDS (default 3).
 */
import { spawnSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import pty from '@lydell/node-pty';
import type { ApiClient } from '../src-main/api/client.js';
import { median, percentile, startLocalAgent } from './lib.js';

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 400);
const MEGABYTES = Number(process.env.BENCH_MB ?? 100);
const ECHO_PROGRAM = ['sh', '-c', 'stty raw -echo; echo ready; exec cat'];

const now = (): number => Number(process.hrtime.bigint()) / 1e6;

function stats(ms: number[]): { median: number; p99: number; mean: number } {
  return { median: percentile(ms, 0.5), p99: percentile(ms, 0.99), mean: ms.reduce((a, b) => a + b, 0) / ms.length };
}

const fmt = (n: number): string => n.toFixed(3);

/** Types one character at a time; resolves each when it comes back. */
async function measureEcho(write: (ch: string) => void, onOutput: (cb: (data: string) => void) => void): Promise<number[]> {
  let pending: { ch: string; resolve: () => void } | null = null;
  let seen = '';
  onOutput((data) => {
    if (!pending) return;
    seen += data;
    if (seen.includes(pending.ch)) {
      const p = pending;
      pending = null;
      p.resolve();
    }
  });
  const samples: number[] = [];
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  for (let i = 0; i < SAMPLES + 20; i++) {
    const ch = alphabet[i % alphabet.length]!;
    seen = '';
    const t0 = now();
    await new Promise<void>((resolve) => {
      pending = { ch, resolve };
      write(ch);
    });
    if (i >= 20) samples.push(now() - t0); // the first ones warm up the JIT and caches
  }
  return samples;
}

async function baselineEcho(): Promise<number[]> {
  const p = pty.spawn(ECHO_PROGRAM[0]!, ECHO_PROGRAM.slice(1), { cols: 80, rows: 24 });
  let ready = '';
  await new Promise<void>((resolve) => {
    const d = p.onData((data) => {
      ready += data;
      if (ready.includes('ready')) {
        d.dispose();
        resolve();
      }
    });
  });
  try {
    return await measureEcho(
      (ch) => p.write(ch),
      (cb) => p.onData(cb),
    );
  } finally {
    p.kill('SIGKILL');
  }
}

async function agentEcho(client: ApiClient): Promise<number[]> {
  const s = await client.request('session.create', { command: ECHO_PROGRAM[0]!, args: ECHO_PROGRAM.slice(1) });
  await client.request('session.wait', { id: s.id, pattern: 'ready', timeoutMs: 10_000 });
  await client.request('session.attach', { id: s.id, cols: 80, rows: 24 });
  try {
    return await measureEcho(
      (ch) => void client.request('session.input', { id: s.id, data: ch }),
      (cb) =>
        client.onEvent((e) => {
          if (e.event === 'session.output' && e.id === s.id) cb(e.data);
        }),
    );
  } finally {
    await client.request('session.remove', { id: s.id, force: true });
  }
}

async function makeTextFile(dir: string): Promise<string> {
  const path = join(dir, 'text.txt');
  const out = createWriteStream(path);
  const line = 'The quick brown fox jumps over the lazy dog; 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ.\n';
  const block = line.repeat(Math.ceil(65536 / line.length));
  for (let written = 0; written < MEGABYTES * 1e6; written += block.length) {
    if (!out.write(block)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((r) => out.end(() => r()));
  return path;
}

async function baselineThroughput(file: string): Promise<Run> {
  const t0 = now();
  const p = pty.spawn('cat', [file], { cols: 80, rows: 24 });
  let chars = 0;
  p.onData((d) => (chars += d.length));
  await new Promise<void>((resolve) => p.onExit(() => resolve()));
  return { seconds: (now() - t0) / 1000, chars };
}

interface Run {
  seconds: number;
  /** Characters the viewer (or tmux's client) received. */
  chars: number;
  resyncs?: number;
}

/**
 * tmux doing the same: a new session running `cat` with its client attached on a pty of the
 * same size, until the client ends with the session. tmux parses everything into its screen and
 * redraws the client's terminal at the client's pace.
 */
async function tmuxThroughput(file: string, dir: string): Promise<Run> {
  const socket = join(dir, 'tmux.sock');
  const env: Record<string, string | undefined> = { ...process.env, TERM: 'xterm-256color', TMUX: undefined };
  const t0 = now();
  const p = pty.spawn('tmux', ['-S', socket, '-f', '/dev/null', 'new-session', `cat '${file}'`], { cols: 80, rows: 24, env });
  let chars = 0;
  p.onData((d) => (chars += d.length));
  await new Promise<void>((resolve) => p.onExit(() => resolve()));
  return { seconds: (now() - t0) / 1000, chars };
}

async function agentThroughput(client: ApiClient, file: string): Promise<Run> {
  const s = await client.request('session.create', { command: 'sh', args: ['-c', `read go; exec cat '${file}'`] });
  await client.request('session.attach', { id: s.id, cols: 80, rows: 24 });
  let chars = 0;
  let resyncs = 0;
  const done = new Promise<void>((resolve) => {
    client.onEvent((e) => {
      if (!('id' in e) || e.id !== s.id) return;
      if (e.event === 'session.output') chars += e.data.length;
      else if (e.event === 'session.resync') resyncs++;
      else if (e.event === 'session.exited') resolve();
    });
  });
  const t0 = now();
  await client.request('session.input', { id: s.id, data: '\r' });
  await done;
  const seconds = (now() - t0) / 1000;
  await client.request('session.remove', { id: s.id, force: true });
  return { seconds, chars, resyncs };
}

function hasTmux(): boolean {
  return spawnSync('tmux', ['-V'], { stdio: 'ignore' }).status === 0;
}

/**
 * Four sessions print FLOOD_MB each at once, each watched by a viewer, while the agent measures
 * its event loop's delay (VOS_LOOP_DELAY=1) and this process pings the agent every 10 ms.
 */
async function floodLoopDelay(file: string): Promise<void> {
  const agent = await startLocalAgent('bench-flood', undefined, { VOS_LOOP_DELAY: '1' });
  const client = agent.client;
  try {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const s = await client.request('session.create', { command: 'sh', args: ['-c', `read go; exec cat '${file}'`] });
      await client.request('session.attach', { id: s.id, cols: 80, rows: 24 });
      ids.push(s.id);
    }
    const exited = new Set<string>();
    const allDone = new Promise<void>((resolve) =>
      client.onEvent((e) => {
        if (e.event === 'session.exited' && ids.includes(e.id)) {
          exited.add(e.id);
          if (exited.size === ids.length) resolve();
        }
      }),
    );
    const before = (await client.request('agent.info', { resetLoopDelay: true })).loopDelay;
    if (!before) throw new Error('the agent does not measure its loop delay (VOS_LOOP_DELAY=1)');
    const t0 = now();
    for (const id of ids) await client.request('session.input', { id, data: '\r' });
    const pings: number[] = [];
    let flooding = true;
    void allDone.then(() => (flooding = false));
    while (flooding) {
      const p0 = now();
      await client.request('session.list', {});
      pings.push(now() - p0);
      await new Promise((r) => setTimeout(r, 10));
    }
    const seconds = (now() - t0) / 1000;
    const delay = (await client.request('agent.info', { resetLoopDelay: true })).loopDelay!;
    const p = stats(pings);
    console.log(`\nfour sessions printing ${MEGABYTES} MB each at once, each with a viewer (${seconds.toFixed(2)} s)`);
    console.log(`  agent event-loop delay   max ${fmt(delay.maxMs)} ms  p99 ${fmt(delay.p99Ms)} ms  (${delay.samples} samples)`);
    console.log(`  API request round trip   median ${fmt(p.median)} ms  p99 ${fmt(p.p99)} ms  max ${fmt(Math.max(...pings))} ms  (${pings.length} requests)`);
    for (const id of ids) await client.request('session.remove', { id, force: true });
  } finally {
    await agent.stop();
  }
}

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

function summary(runs: Run[]): { best: Run; median: number } {
  const best = runs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
  return { best, median: median(runs.map((r) => r.seconds)) };
}

async function main(): Promise<void> {
  const agent = await startLocalAgent('bench');
  const dir = agent.home;
  try {
    const client = agent.client;

    console.log(`keystroke-to-echo latency, ${SAMPLES} keys (ms)`);
    const base = stats(await baselineEcho());
    const viaAgent = stats(await agentEcho(client));
    console.log(`  node-pty direct     median ${fmt(base.median)}  p99 ${fmt(base.p99)}  mean ${fmt(base.mean)}`);
    console.log(`  through the agent   median ${fmt(viaAgent.median)}  p99 ${fmt(viaAgent.p99)}  mean ${fmt(viaAgent.mean)}`);
    console.log(`  ratio (agent / direct): median ${(viaAgent.median / base.median).toFixed(2)}x, p99 ${(viaAgent.p99 / base.p99).toFixed(2)}x`);

    const file = await makeTextFile(dir);
    const tmux = hasTmux();
    console.log(`\nthroughput, cat of a ${MEGABYTES} MB text file to a viewer; ${ROUNDS} rounds, each runs all in turn${tmux ? '' : ' (tmux is not installed: no tmux row)'}`);
    const runs: { direct: Run[]; agent: Run[]; tmux: Run[] } = { direct: [], agent: [], tmux: [] };
    for (let i = 0; i < ROUNDS; i++) {
      runs.direct.push(await baselineThroughput(file));
      runs.agent.push(await agentThroughput(client, file));
      if (tmux) runs.tmux.push(await tmuxThroughput(file, dir));
    }
    const row = (name: string, rs: Run[], note: (r: Run) => string): void => {
      const { best, median: med } = summary(rs);
      console.log(`  ${name.padEnd(19)} best ${best.seconds.toFixed(2)} s  median ${med.toFixed(2)} s  ${(MEGABYTES / best.seconds).toFixed(1)} MB/s  (${note(best)})`);
    };
    row('node-pty direct', runs.direct, (r) => `${r.chars} chars`);
    row('through the agent', runs.agent, (r) => `${r.chars} chars to the viewer, ${r.resyncs} resyncs`);
    if (tmux) row('through tmux', runs.tmux, (r) => `${r.chars} chars of redraws to its client`);
    const a = summary(runs.agent);
    console.log(`  ratio (agent / direct throughput): best ${(summary(runs.direct).best.seconds / a.best.seconds).toFixed(2)}`);
    if (tmux) {
      const t = summary(runs.tmux);
      console.log(`  agent faster than tmux: best ${(t.best.seconds / a.best.seconds).toFixed(2)}x, median ${(t.median / a.median).toFixed(2)}x`);
    }
    await floodLoopDelay(file);
  } finally {
    await agent.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
