/**
 * Runtime benchmarks (`npm run bench:runtime`): checkpoint and restore of processes holding 64,
 * 256 and 1024 MiB of touched memory and of an idle bash, through a real agent; baselines
 * measured in the same run; and what the injected runtime costs a program.
 *
 * Prints, per workload (median of BENCH_RUNS, default 3): frozen time, checkpoint wall time,
 * image size, restore time, and two baselines: writing the image's bytes to a new file in the
 * same directory (what the frozen time is bounded by: the pod writes its memory straight into
 * the image file) and simply touching (and filling) the same amount of fresh memory. Then the CRIU 4.2 figures measured on this kind of machine
 * (../shared/STACK.md), the frozen time of the stop from outside (ptrace, for programs the runtime
 * is not in) against the runtime's for an idle bash and 256 MiB, the time to adopt a program from
 * another terminal, whether compression pays, and the runtime's overhead.
 *
 * Environment: BENCH_RUNS (3), BENCH_SIZES (64,256,1024).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync, constants as zlibConstants } from 'node:zlib';
import type { ApiClient } from '../src-main/api/client.js';
import { packageRoot } from '../src-main/base/package-paths.js';
import pty from '@lydell/node-pty';
import { median, startLocalAgent, until } from './lib.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SIZES = (process.env.BENCH_SIZES ?? '64,256,1024').split(',').map(Number);
const RUNTIME = join(packageRoot(), 'out', 'runtime');

const mib = (bytes: number): string => `${(bytes / 1048576).toFixed(1)} MiB`;
const ms = (x: number): string => `${x.toFixed(0)} ms`;

interface Sample {
  frozenMs: number;
  checkpointMs: number;
  bytes: number;
  restoreMs: number;
  touchMs: number;
  fillMs: number;
}

interface Workload {
  name: string;
  mib: number;
  start: () => Promise<string>;
  ready: string;
  check?: { send: string; expect: string };
}

async function waitScreen(client: ApiClient, id: string, pattern: string, timeoutMs = 120_000): Promise<void> {
  await client.request('session.wait', { id, pattern, timeoutMs });
}

/** Pause before each timed restore and each baseline: memory freed a moment ago (the checkpointed
 * process, the previous run) is still being handed back to the hypervisor on a VM with free page
 * reporting, and whichever run meets it pays for it. Both start from the same settled state. */
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 2500);
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, SETTLE_MS));

async function cycle(client: ApiClient, dir: string, programs: string, w: Workload): Promise<Sample> {
  const id = await w.start();
  await waitScreen(client, id, w.ready);
  const file = join(dir, `bench-${id}.vosimg`);
  const cp = await client.request('session.checkpoint', { id, out: file, stop: true });
  warmPageCache(file);
  const touchMs = w.mib ? (await settle(), timeFresh(programs, w.mib, 'touch')) : 0;
  const fillMs = w.mib ? (await settle(), timeFresh(programs, w.mib, 'fill')) : 0;
  await settle();
  const t0 = performance.now();
  const restored = await client.request('session.restore', { file });
  const restoreMs = performance.now() - t0;
  if (w.check) {
    await client.request('session.input', { id: restored.id, data: w.check.send });
    await waitScreen(client, restored.id, w.check.expect);
  }
  await client.request('session.remove', { id: restored.id, force: true });
  await client.request('session.remove', { id, force: true });
  unlinkSync(file);
  return { frozenMs: cp.frozenMs, checkpointMs: cp.wallMs, bytes: cp.bytes, restoreMs, touchMs, fillMs };
}

/** Reads the image once so that the restore reads it from memory, as "page cache warm" says
 * (DAMON page-out, where active, may have evicted part of it already). */
function warmPageCache(file: string): void {
  const fd = openSync(file, 'r');
  const buf = Buffer.allocUnsafe(1 << 20);
  try {
    while (readSync(fd, buf, 0, buf.length, null) > 0);
  } finally {
    closeSync(fd);
  }
}

/** Milliseconds to map `mibs` MiB of fresh memory and touch a byte per page (or fill it all). */
function timeFresh(programs: string, mibs: number, mode: 'touch' | 'fill'): number {
  return Number(execFileSync(join(programs, 'touch'), [String(mibs), mode], { encoding: 'utf8' }).trim()) * 1000;
}

/** Writes `bytes` to a new file in `dir` in 1 MiB writes (no fsync, like the frozen part of a checkpoint). */
function writeBaseline(dir: string, bytes: number): number {
  const chunk = Buffer.alloc(1 << 20, 0x5a);
  const runs = Array.from({ length: RUNS }, () => {
    const file = join(dir, 'write-baseline');
    const fd = openSync(file, 'w', 0o600);
    const t0 = performance.now();
    for (let done = 0; done < bytes; done += chunk.length) writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - done));
    const took = performance.now() - t0;
    closeSync(fd);
    unlinkSync(file);
    return took;
  });
  return median(runs);
}

/** DAMON's page-out scheme evicts page cache it considers cold, so an image may be read from disk. */
function damonPageout(): boolean {
  const action = '/sys/kernel/mm/damon/admin/kdamonds/0/contexts/0/schemes/0/action';
  try {
    return existsSync(action) && readFileSync(action, 'utf8').trim() === 'pageout';
  } catch {
    return false;
  }
}

function startupOverhead(): { plain: number; vos: number } {
  const time = (cmd: string[]): number => {
    const xs: number[] = [];
    for (let i = 0; i < 21; i++) {
      const t0 = performance.now();
      spawnSync(cmd[0]!, cmd.slice(1));
      xs.push(performance.now() - t0);
    }
    return median(xs);
  };
  return {
    plain: time(['/bin/true']),
    vos: time([join(RUNTIME, 'vos-init'), 'launch', '--runtime', join(RUNTIME, 'libvos.so'), '--', '/bin/true']),
  };
}

function syscallThroughput(): { plain: number; vos: number } {
  // 4 M small reads and writes through dd: a syscall-heavy loop.
  const dd = ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64', 'count=2000000'];
  const rate = (cmd: string[]): number => {
    const xs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      spawnSync(cmd[0]!, cmd.slice(1));
      xs.push(4_000_000 / ((performance.now() - t0) / 1000));
    }
    return median(xs);
  };
  return { plain: rate(dd), vos: rate([join(RUNTIME, 'vos-init'), 'launch', '--runtime', join(RUNTIME, 'libvos.so'), '--', ...dd]) };
}

async function main(): Promise<void> {
  const agent = await startLocalAgent('bench', mkdtempSync('/tmp/vos-bench-rt-'));
  const dir = agent.home;
  const programs = join(dir, 'programs');
  try {
    execFileSync('make', ['-s', '-C', join(packageRoot(), 'test', 'runtime', 'programs'), `OUT=${programs}`], { stdio: 'inherit' });
    const client = agent.client;
    const env = { ...(process.env as Record<string, string>), PS1: 'bench$ ' };

    console.log(`checkpoint and restore, median of ${RUNS} (image written to ${dir}, page cache warm)`);
    console.log('workload        frozen   checkpoint  image        restore   write image  frozen ÷ write   touch/fill fresh memory  restore ÷ touch');
    const results: Record<string, Sample> = {};
    const workloads: Workload[] = [
      {
        name: 'idle bash',
        mib: 0,
        start: async () => (await client.request('session.create', { command: 'bash', args: ['--norc', '--noprofile'], env })).id,
        ready: '^bench\\$',
        check: { send: 'echo alive-$((6*7))\r', expect: '^alive-42$' },
      },
      ...SIZES.map((n) => ({
        name: `${n} MiB process`,
        mib: n,
        start: async () => (await client.request('session.create', { command: join(programs, 'memhog'), args: [String(n)], env })).id,
        ready: `^ready ${n} MiB$`,
        check: { send: '\r', expect: '^check ok$' },
      })),
    ];
    for (const w of workloads) {
      const samples: Sample[] = [];
      for (let i = 0; i < RUNS; i++) samples.push(await cycle(client, dir, programs, w));
      const s: Sample = {
        frozenMs: median(samples.map((x) => x.frozenMs)),
        checkpointMs: median(samples.map((x) => x.checkpointMs)),
        bytes: median(samples.map((x) => x.bytes)),
        restoreMs: median(samples.map((x) => x.restoreMs)),
        touchMs: median(samples.map((x) => x.touchMs)),
        fillMs: median(samples.map((x) => x.fillMs)),
      };
      results[w.name] = s;
      const touch = s.touchMs;
      const fill = s.fillMs;
      const write = writeBaseline(dir, s.bytes);
      console.log(
        `${w.name.padEnd(15)} ${ms(s.frozenMs).padStart(7)} ${ms(s.checkpointMs).padStart(11)}  ${mib(s.bytes).padStart(11)} ${ms(s.restoreMs).padStart(9)}` +
          `  ${ms(write).padStart(10)}  ${(s.frozenMs / write).toFixed(2).padStart(9)}x` +
          (w.mib ? `   ${ms(touch).padStart(13)} / ${ms(fill).padStart(7)}        ${(s.restoreMs / touch).toFixed(2)}x` : ''),
      );
    }

    // The stop from outside (ptrace, no runtime in the process: dump/ptrace-dump.c) against the
    // runtime's, on the same workloads: bash started without the runtime, and a static build of
    // the memory program.
    console.log('\nstopped from outside (ptrace) against by the runtime, median of ' + RUNS);
    console.log('workload        runtime frozen   outside frozen   ratio   outside restore');
    const outside: Workload[] = [
      {
        name: 'idle bash',
        mib: 0,
        start: async () => (await client.request('session.create', { command: 'env', args: ['-u', 'LD_PRELOAD', 'bash', '--norc', '--noprofile'], env })).id,
        ready: '^bench\\$',
        check: { send: 'echo alive-$((6*7))\r', expect: '^alive-42$' },
      },
      {
        name: '256 MiB process',
        mib: 256,
        start: async () => (await client.request('session.create', { command: join(programs, 'static-memhog'), args: ['256'], env })).id,
        ready: '^ready 256 MiB$',
        check: { send: '\r', expect: '^check ok$' },
      },
    ];
    for (const w of outside) {
      const samples: Sample[] = [];
      for (let i = 0; i < RUNS; i++) samples.push(await cycle(client, dir, programs, { ...w, mib: 0 }));
      const frozen = median(samples.map((x) => x.frozenMs));
      const byRuntime = results[w.name]?.frozenMs;
      console.log(
        `${w.name.padEnd(15)} ${(byRuntime === undefined ? '-' : ms(byRuntime)).padStart(14)}   ${ms(frozen).padStart(14)}   ` +
          `${byRuntime === undefined ? '  -  ' : (frozen / byRuntime).toFixed(2) + 'x'}   ${ms(median(samples.map((x) => x.restoreMs))).padStart(15)}`,
      );
    }

    // Adopting a program from another terminal (vos adopt): bash under script on a pty of this
    // process, with a job; from the request to the answer (a new session, the terminal switched).
    const adoptMs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      let out = '';
      const term = pty.spawn('script', ['-qfc', 'exec env PS1="other$ " bash --norc --noprofile', '/dev/null'], { cols: 80, rows: 24, env: { ...env, PS1: 'other$ ' } });
      term.onData((d) => (out += d));
      try {
        await until('bash to prompt', () => /other\$ $/.test(out), 10_000);
        term.write('sleep 1 &\r');
        await until('its job', () => /\[1\] \d+/.test(out), 10_000);
        const bash = Number(execFileSync('pgrep', ['-P', String(term.pid), '-x', 'bash'], { encoding: 'utf8' }).trim());
        const t0 = performance.now();
        const adopted = await client.request('session.adopt', { pid: bash });
        adoptMs.push(performance.now() - t0);
        await client.request('session.remove', { id: adopted.id, force: true });
      } finally {
        term.kill('SIGKILL');
      }
    }
    console.log(`\nadopting bash and its job from another terminal (session.adopt, request to answer): median ${ms(median(adoptMs))} of ${RUNS}`);

    if (damonPageout()) {
      console.log('note: DAMON page-out is active on this machine: it evicts page cache it thinks cold, so each image is read once\n' +
        '      before its restore is timed (a restore that has to read the image from disk takes longer)');
    }
    console.log('\nCRIU 4.2 on this kind of machine (../shared/STACK.md):');
    console.log('  256 MiB: dump 230 ms (frozen 140 ms), image 269 MB, restore 900 ms;  1 GiB: dump 1300 ms, restore 3400 ms');

    // Does compression pay? One 256 MiB image (or the largest measured) through zlib level 1.
    const n = SIZES.includes(256) ? 256 : SIZES[0]!;
    const id = (await client.request('session.create', { command: join(programs, 'memhog'), args: [String(n)], env })).id;
    await waitScreen(client, id, `^ready ${n} MiB$`);
    const file = join(dir, 'compress.vosimg');
    await client.request('session.checkpoint', { id, out: file, stop: true });
    const raw = readFileSync(file);
    const t0 = performance.now();
    const packed = gzipSync(raw, { level: 1, strategy: zlibConstants.Z_DEFAULT_STRATEGY });
    const gzipMs = performance.now() - t0;
    console.log(`\ncompression (zlib level 1) of a ${n} MiB process's image: ${mib(raw.length)} -> ${mib(packed.length)} ` +
      `(${((packed.length / raw.length) * 100).toFixed(0)}%) in ${ms(gzipMs)} = ${(raw.length / 1048576 / (gzipMs / 1000)).toFixed(0)} MiB/s`);
    unlinkSync(file);
    await client.request('session.remove', { id, force: true });

    const start = startupOverhead();
    console.log(`\nruntime overhead: start-up of /bin/true  plain ${start.plain.toFixed(2)} ms, under vOS (pod + runtime) ${start.vos.toFixed(2)} ms`);
    const sys = syscallThroughput();
    console.log(`                  syscall-heavy loop (dd, 4M syscalls)  plain ${(sys.plain / 1e6).toFixed(2)} M/s, under vOS ${(sys.vos / 1e6).toFixed(2)} M/s  (ratio ${(sys.vos / sys.plain).toFixed(3)})`);
  } finally {
    await agent.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
