/**
 * Terminal path benchmarks (`npm run bench`): what the agent costs a viewer, measured against
 * node-pty used directly, in the same process and run.
 *
 * 1. Keystroke-to-echo latency: one character typed, until the program's echo of it arrives.
 *    The program is `cat` on a raw terminal, so every key makes a round trip through it.
 *      baseline: node-pty.write → pty → cat → pty → node-pty onData (this process)
 *      agent:    client → Unix socket → agent → pty → cat → pty → agent (mirror, batcher) →
 *                Unix socket → client (an attached viewer)
 * 2. Throughput: `cat` of a 100 MB text file, until the last byte reaches the viewer.
 *
 * Environment: BENCH_SAMPLES (default 400), BENCH_MB (default 100).
 */
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import pty from '@lydell/node-pty';
import type { ApiClient } from '../src-main/api/client.js';
import { percentile, startLocalAgent } from './lib.js';

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

async function baselineThroughput(file: string): Promise<{ seconds: number; chars: number }> {
  const t0 = now();
  const p = pty.spawn('cat', [file], { cols: 80, rows: 24 });
  let chars = 0;
  p.onData((d) => (chars += d.length));
  await new Promise<void>((resolve) => p.onExit(() => resolve()));
  return { seconds: (now() - t0) / 1000, chars };
}

async function agentThroughput(client: ApiClient, file: string): Promise<{ seconds: number; chars: number; resyncs: number }> {
  const s = await client.request('session.create', { command: 'sh', args: ['-c', `read go; exec cat '${file}'`] });
  await client.request('session.attach', { id: s.id, cols: 80, rows: 24 });
  let chars = 0;
  let resyncs = 0;
  let t0 = 0;
  const done = new Promise<void>((resolve) => {
    client.onEvent((e) => {
      if (!('id' in e) || e.id !== s.id) return;
      if (e.event === 'session.output') chars += e.data.length;
      else if (e.event === 'session.resync') resyncs++;
      else if (e.event === 'session.exited') resolve();
    });
  });
  t0 = now();
  await client.request('session.input', { id: s.id, data: '\r' });
  await done;
  const seconds = (now() - t0) / 1000;
  await client.request('session.remove', { id: s.id, force: true });
  return { seconds, chars, resyncs };
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
    console.log(`\nthroughput, cat of a ${MEGABYTES} MB text file to a viewer`);
    const bt = await baselineThroughput(file);
    const at = await agentThroughput(client, file);
    const mbps = (chars: number, s: number): string => (chars / 1e6 / s).toFixed(1);
    console.log(`  node-pty direct     ${bt.seconds.toFixed(2)} s  ${mbps(bt.chars, bt.seconds)} MB/s  (${bt.chars} chars)`);
    console.log(`  through the agent   ${at.seconds.toFixed(2)} s  ${mbps(at.chars, at.seconds)} MB/s  (${at.chars} chars, ${at.resyncs} resyncs)`);
    console.log(`  ratio (agent / direct throughput): ${(bt.seconds / at.seconds).toFixed(2)}`);
  } finally {
    await agent.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
