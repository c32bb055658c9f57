/**
 * Incremental checkpoints (`npm run bench:incremental`): a 256 MiB process that rewrites 1% of
 * its memory between checkpoints, checkpointed every 2 s into the image store through a real
 * agent, incremental (as scheduled checkpoints are) and then whole, in the same run. Prints per
 * checkpoint the bytes written and the frozen time, the medians, their ratios and the goal (issue
 * 9: at most 5% of the bytes and 20% of the frozen time of a whole checkpoint).
 *
 * The program is test/runtime/programs/dirtier: MIB, pages rewritten per step, step length, and
 * 0: no stack growth (what it rewrites is all that changes); 33 random pages every 100 ms is
 * about 660 of the 65,536 pages (1%) in 2 s. Besides those, an incremental image holds what
 * every image does: the process's records, the screen, and its mapped files' descriptions (their
 * content, about 2 MiB for a C program and its libc, only in the whole image: the incremental
 * ones refer to it, FILEREF).
 *
 * Environment: BENCH_ROUNDS (6 of each), BENCH_MIB (256), BENCH_PERIOD_MS (2000).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import type { CheckpointResult } from '../src-main/api/protocol.js';
import { packageRoot } from '../src-main/base/package-paths.js';
import { median, sleep, startLocalAgent } from './lib.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
const MIB = Number(process.env.BENCH_MIB ?? 256);
const PERIOD_MS = Number(process.env.BENCH_PERIOD_MS ?? 2000);
const STEP_US = 100_000;
/** Pages rewritten per step so that 1% of the memory changes in one period. */
const PER_STEP = Math.max(1, Math.round(((MIB * 256) / 100) * (STEP_US / 1000 / PERIOD_MS)));

const mib = (bytes: number): string => `${(bytes / 1048576).toFixed(2)} MiB`;

async function main(): Promise<void> {
  const agent = await startLocalAgent('bench', mkdtempSync('/tmp/vos-bench-inc-'));
  const programs = join(agent.home, 'programs');
  try {
    execFileSync('make', ['-s', '-C', join(packageRoot(), 'test', 'runtime', 'programs'), `OUT=${programs}`], { stdio: 'inherit' });
    const client = agent.client;
    const env = { ...(process.env as Record<string, string>) };
    const { id } = await client.request('session.create', {
      command: join(programs, 'dirtier'),
      args: [String(MIB), String(PER_STEP), String(STEP_US), '0'], // 0: its stack stays as it is
      env,
    });
    await client.request('session.wait', { id, pattern: 'tick 2 ok', timeoutMs: 120_000 });

    /** ROUNDS checkpoints, one every PERIOD_MS (the wait is from the start of the previous one). */
    const series = async (incremental: boolean, rounds: number): Promise<CheckpointResult[]> => {
      const out: CheckpointResult[] = [];
      for (let i = 0; i < rounds; i++) {
        const t0 = Date.now();
        out.push(await client.request('session.checkpoint', { id, keep: 3, ...(incremental ? { incremental: true } : {}) }));
        const r = out[out.length - 1]!;
        const what = r.incremental ? `incremental on ${r.parent}` : r.fullReason ? `whole: ${r.fullReason}` : 'whole';
        console.log(`  ${mib(r.bytes).padStart(12)}  frozen ${r.frozenMs.toFixed(1).padStart(7)} ms  ${r.wallMs} ms in all  (${what})`);
        await sleep(Math.max(0, PERIOD_MS - (Date.now() - t0)));
      }
      return out;
    };

    console.log(`${MIB} MiB process rewriting ${PER_STEP} random pages every ${STEP_US / 1000} ms (~1% of its memory in ${PERIOD_MS} ms), a checkpoint every ${PERIOD_MS} ms`);
    console.log('incremental (the first of a session is whole):');
    const inc = (await series(true, ROUNDS + 1)).slice(1).filter((r) => r.incremental);
    console.log('whole:');
    const whole = await series(false, ROUNDS);
    if (inc.length === 0) {
      console.log('no incremental checkpoint was possible here (see the reasons above)');
      return;
    }
    const ib = median(inc.map((r) => r.bytes));
    const wb = median(whole.map((r) => r.bytes));
    const ifz = median(inc.map((r) => r.frozenMs));
    const wfz = median(whole.map((r) => r.frozenMs));
    const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
    console.log(`median of ${inc.length} incremental / ${whole.length} whole:`);
    console.log(`  bytes written   ${mib(ib)} / ${mib(wb)} = ${pct(ib / wb)}  (goal at most 5%: ${ib / wb <= 0.05 ? 'met' : 'NOT met'})`);
    console.log(`  frozen time     ${ifz.toFixed(1)} ms / ${wfz.toFixed(1)} ms = ${pct(ifz / wfz)}  (goal at most 20%: ${ifz / wfz <= 0.2 ? 'met' : 'NOT met'})`);
    await client.request('session.remove', { id, force: true });
  } finally {
    await agent.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
