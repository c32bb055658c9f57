/**
 * What the benchmarks share: statistics, waiting on a condition, and agents to measure — on
 * loopback (no mDNS, links on 127.0.0.1), or on a simulated host (test/helpers/netns.ts) with
 * mDNS, and pairing two of them through the API.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import type { ApiClient } from '../src-main/api/client.js';
import { cliEntry } from '../src-main/base/package-paths.js';
import { statePaths } from '../src-main/base/state-dir.js';
import { connectToAgent } from '../src-main/client/socket-transport.js';
import type { SimHost, SimNetwork } from '../test/helpers/netns.js';

const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);
export const median = (xs: number[]): number => sorted(xs)[Math.floor(xs.length / 2)]!;
export const percentile = (xs: number[], p: number): number => sorted(xs)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it returns something truthy; throws after `timeoutMs`. */
export async function until<T>(what: string, probe: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs: number, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

export interface BenchAgent {
  name: string;
  home: string;
  proc: ChildProcess;
  /** When it said it runs (Date.now()). */
  started: number;
  client: ApiClient;
  /** Ends it (SIGTERM: with a goodbye) and removes its state directory. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

async function attach(name: string, home: string, proc: ChildProcess): Promise<BenchAgent> {
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', () => {});
  await until(`agent ${name}`, () => out.includes('running (pid') || proc.exitCode !== null, 15_000);
  if (proc.exitCode !== null) throw new Error(`agent ${name} did not start`);
  const started = Date.now();
  const client = await connectToAgent(statePaths(home).socket, 'bench');
  return {
    name,
    home,
    proc,
    started,
    client,
    async stop(signal = 'SIGTERM') {
      client.close();
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill(signal);
        await exited;
      }
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/** An agent on this machine, off the network. */
export function startLocalAgent(name: string, home = mkdtempSync('/tmp/vos-bench-'), env: Record<string, string> = {}): Promise<BenchAgent> {
  const proc = spawn(process.execPath, [cliEntry(), 'daemon', '--name', name], {
    env: { ...process.env, ...env, VOS_HOME: home, VOS_MDNS: '0', VOS_LISTEN: '127.0.0.1:0' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return attach(name, home, proc);
}

/** An agent on a simulated host, listening on its address, with mDNS. */
export function startHostAgent(net: SimNetwork, host: SimHost, name: string): Promise<BenchAgent> {
  const home = mkdtempSync('/tmp/vos-bench-h-');
  const proc = net.spawn(host, process.execPath, [cliEntry(), 'daemon', '--name', name, '--listen', `${host.address}:47470`], {
    env: { VOS_HOME: home, VOS_MDNS: '1', VOS_LISTEN: undefined },
  });
  return attach(name, home, proc);
}

/** `a` asks, `b` accepts with the code, `a` confirms `b` shows it: paired, as two users would do it. */
export async function pairAgents(a: BenchAgent, b: BenchAgent): Promise<void> {
  await until(`${a.name} to see ${b.name}`, async () => (await a.client.request('peer.list', {})).some((p) => p.name === b.name && p.online), 15_000, 100);
  const { code } = await a.client.request('pair.request', { peer: b.name });
  const waiting = a.client.request('pair.wait', { peer: b.name, timeoutMs: 20_000 });
  await until(`the request on ${b.name}`, async () => (await b.client.request('pair.pending', {})).length > 0, 10_000);
  await b.client.request('pair.accept', { peer: a.name, code });
  await a.client.request('pair.confirm', { peer: b.name, code });
  await waiting;
  await b.client.request('pair.wait', { peer: a.name, timeoutMs: 20_000 });
}
