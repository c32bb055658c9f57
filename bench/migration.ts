/**
 * Migration benchmarks (`npm run bench:migration`; needs root: the two machines are network
 * namespaces joined by a veth link). For an idle bash and processes holding 256 MiB and 1 GiB of
 * touched memory: downtime (the program frozen on A until it runs on B), total time of the move,
 * and bytes on the wire against the memory the process touched. Stop-and-copy only: live
 * (pre-copy) migration is not built yet.
 *
 * Environment: BENCH_RUNS (3), BENCH_SIZES (256,1024).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src-main/base/package-paths.js';
import { createSimNetwork, netnsUnavailable } from '../test/helpers/netns.js';
import { median, pairAgents, startHostAgent, type BenchAgent } from './lib.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SIZES = (process.env.BENCH_SIZES ?? '256,1024').split(',').map(Number);

const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;

interface Sample {
  downtimeMs: number;
  wallMs: number;
  bytes: number;
}

async function moveOnce(a: BenchAgent, b: BenchAgent, command: string, args: string[], ready: string): Promise<Sample> {
  const s = await a.client.request('session.create', { command, args, env: { ...(process.env as Record<string, string>), PS1: 'bench$ ' } });
  await a.client.request('session.wait', { id: s.id, pattern: ready, timeoutMs: 60_000 });
  const r = await a.client.request('session.migrate', { id: s.id, peer: 'beta' });
  const there = r.session.id.slice(0, r.session.id.indexOf('@'));
  await b.client.request('session.remove', { id: there, force: true });
  return { downtimeMs: r.downtimeMs, wallMs: r.wallMs, bytes: r.bytes };
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
    console.log(`stop-and-copy migration between two namespaces over a veth link, median of ${RUNS}`);
    console.log('workload          downtime     total     on the wire   touched memory   wire / touched');
    const workloads = [
      { name: 'idle bash', mib: 0, command: 'bash', args: ['--norc', '--noprofile'], ready: '^bench\\$' },
      ...SIZES.map((n) => ({ name: `${n} MiB process`, mib: n, command: join(programs, 'memhog'), args: [String(n)], ready: `^ready ${n} MiB$` })),
    ];
    for (const w of workloads) {
      const samples: Sample[] = [];
      for (let i = 0; i < RUNS; i++) samples.push(await moveOnce(a, b, w.command, w.args, w.ready));
      const d = median(samples.map((x) => x.downtimeMs));
      const t = median(samples.map((x) => x.wallMs));
      const bytes = median(samples.map((x) => x.bytes));
      const touched = w.mib * 1048576;
      console.log(
        `${w.name.padEnd(16)} ${`${d} ms`.padStart(9)} ${`${t} ms`.padStart(9)}   ${mib(bytes).padStart(11)}   ${(w.mib ? mib(touched) : '-').padStart(14)}   ${w.mib ? (bytes / touched).toFixed(3) : '-'}`,
      );
    }
    console.log('\ngoals: an interactive shell under 150 ms of downtime; 1 GiB under 300 ms when it dirties little memory (needs live migration, not built yet)');
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
