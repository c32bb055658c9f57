/**
 * Migration benchmarks (`npm run bench:migration`; needs root: the two machines are network
 * namespaces joined by a veth link). For an idle bash and processes holding 256 MiB and 1 GiB of
 * touched memory, idle after they touched it, a 256 MiB process that rewrites 8 MB/s of it, a
 * process with 4 GiB reserved and almost none of it touched, and jshell (a JVM) where installed:
 * downtime (the program frozen on A until it runs on B), total time of the move, and bytes on
 * the wire against the memory the process touched — stop-and-copy against live (pre-copy), in
 * the same run.
 *
 * Environment: BENCH_RUNS (3), BENCH_SIZES (256,1024), BENCH_ONLY (run only the workloads whose name
 * contains it), BENCH_MODES (stop-and-copy,live).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { MigrationMode } from '../src-main/api/protocol.js';
import { packageRoot } from '../src-main/base/package-paths.js';
import { createSimNetwork, netnsUnavailable } from '../test/helpers/netns.js';
import { median, pairAgents, startHostAgent, type BenchAgent } from './lib.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SIZES = (process.env.BENCH_SIZES ?? '256,1024').split(',').map(Number);
const ONLY = process.env.BENCH_ONLY ?? '';
const MODES = (process.env.BENCH_MODES ?? 'stop-and-copy,live').split(',') as MigrationMode[];

const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;

interface Sample {
  downtimeMs: number;
  wallMs: number;
  bytes: number;
  rounds: number;
}

async function moveOnce(a: BenchAgent, b: BenchAgent, w: Workload, mode: MigrationMode): Promise<Sample> {
  const s = await a.client.request('session.create', { command: w.command, args: w.args, env: { ...(process.env as Record<string, string>), PS1: 'bench$ ' } });
  await a.client.request('session.wait', { id: s.id, pattern: w.ready, timeoutMs: 60_000 });
  const r = await a.client.request('session.migrate', { id: s.id, peer: 'beta', mode });
  if (r.fallback) console.log(`  (not live: ${r.fallback})`);
  const there = r.session.id.slice(0, r.session.id.indexOf('@'));
  await b.client.request('session.remove', { id: there, force: true });
  return { downtimeMs: r.downtimeMs, wallMs: r.wallMs, bytes: r.bytes, rounds: r.rounds };
}

interface Workload {
  name: string;
  mib: number;
  command: string;
  args: string[];
  ready: string;
}

async function main(): Promise<void> {
  const why = netnsUnavailable();
  if (why) {
    console.log(`skipped: ${why} (the two machines are network namespaces; run as root)`);
    return;
  }
  const programs = mkdtempSync('/tmp/vos-bench-mp-');
  execFileSync('make', ['-s', '-C', join(packageRoot(), 'test', 'runtime', 'programs'), `OUT=${programs}`], { stdio: 'inherit' });
  const net = createSimNetwork(2);
  let a: BenchAgent | null = null;
  let b: BenchAgent | null = null;
  try {
    a = await startHostAgent(net, net.hosts[0]!, 'alpha');
    b = await startHostAgent(net, net.hosts[1]!, 'beta');
    await pairAgents(a, b);
    console.log(`migration between two namespaces over a veth link, median of ${RUNS}`);
    console.log('workload                 mode            downtime     total   rounds   on the wire   touched memory   wire / touched');
    const workloads: Workload[] = [
      { name: 'idle bash', mib: 0, command: 'bash', args: ['--norc', '--noprofile'], ready: '^bench\\$' },
      ...SIZES.map((n) => ({ name: `${n} MiB, idle`, mib: n, command: join(programs, 'memhog'), args: [String(n)], ready: `^ready ${n} MiB$` })),
      // 20 pages every 10 ms: 8 MB/s of writes, spread over the whole 256 MiB
      { name: '256 MiB, 8 MB/s written', mib: 256, command: join(programs, 'dirtier'), args: ['256', '20'], ready: '^tick 1 ok' },
      // As a JVM's heap, V8's cage or Go's arenas: 4 GiB reserved, one page in 16384 touched.
      { name: '4 GiB reserved, idle', mib: 0, command: join(programs, 'reserver'), args: [], ready: '^ready$' },
      ...(existsSync('/usr/bin/jshell') ? [{ name: 'jshell (a JVM)', mib: 0, command: '/usr/bin/jshell', args: ['-q'], ready: 'jshell> *$' }] : []),
    ];
    for (const w of workloads.filter((x) => x.name.includes(ONLY))) {
      for (const mode of MODES) {
        const samples: Sample[] = [];
        for (let i = 0; i < RUNS; i++) samples.push(await moveOnce(a, b, w, mode));
        const d = median(samples.map((x) => x.downtimeMs));
        const t = median(samples.map((x) => x.wallMs));
        const bytes = median(samples.map((x) => x.bytes));
        const rounds = median(samples.map((x) => x.rounds));
        const touched = w.mib * 1048576;
        console.log(
          `${w.name.padEnd(24)} ${mode.padEnd(14)} ${`${d} ms`.padStart(9)} ${`${t} ms`.padStart(9)} ${String(rounds).padStart(8)}   ${mib(bytes).padStart(11)}   ${(w.mib ? mib(touched) : '-').padStart(14)}   ${w.mib ? (bytes / touched).toFixed(3) : '-'}`,
        );
      }
    }
    console.log('\ngoals: an interactive shell under 150 ms of downtime; 1 GiB under 300 ms when it dirties little memory');
  } finally {
    if (b) await b.stop();
    if (a) await a.stop();
    await net.dispose();
    rmSync(programs, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
