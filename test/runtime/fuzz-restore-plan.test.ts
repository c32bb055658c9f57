/**
 * The restorer's planning under libFuzzer (src-main/runtime/fuzz/restore-plan.c, with
 * AddressSanitizer and UndefinedBehaviorSanitizer): any bytes through image_load, then pod init's
 * plan (restore/plan.c: the vdso check, every process's runs, the hole for the restorer), whose
 * invariants the target checks. Every committed crash input (test/runtime/fuzz/plan-regressions/)
 * and every seed run once, then a short run (a few seconds; the long run is scripts/fuzz.sh).
 * Skipped, saying why, where clang's fuzzer runtime is missing.
 *
 * Seeds: the image reader's (src-main/runtime/fuzz/seeds/, real images of tiny programs) and
 * src-main/runtime/fuzz/plan-seeds/, derived from them here so the plan's other paths have a
 * start: a migration's final image (KEPT runs, the pages in PRECOPY records). To write them again:
 *   VOS_WRITE_FUZZ_SEEDS=1 npx vitest run test/runtime/fuzz-restore-plan.test.ts
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RECORD } from '../../src-main/agent/runtime/image-records.js';
import { ROOT } from '../helpers/agent-process.js';
import { joinImage, splitImage, type ImageRecord } from '../helpers/image-edit.js';
import { fuzzerMissing, runFor, runInputs } from '../helpers/libfuzzer.js';
import { RUNTIME_DIR } from '../helpers/runtime-dir.js';

const RUNTIME = join(ROOT, 'src-main', 'runtime');
const SEEDS = join(RUNTIME, 'fuzz', 'seeds');
const PLAN_SEEDS = join(RUNTIME, 'fuzz', 'plan-seeds');
const REGRESSIONS = join(ROOT, 'test', 'runtime', 'fuzz', 'plan-regressions');
const INIT = join(RUNTIME_DIR, 'vos-init');
const RUN_KEPT = 2;

/** Each run of a PAGES payload (no page data: the seeds' runs are zero runs) with its kind set. */
function withRunKind(payload: Buffer, kind: number): Buffer {
  const out = Buffer.from(payload);
  for (let at = 8; at + 16 <= out.length; at += 16) out.writeUInt32LE(kind, at + 12);
  return out;
}

/** A migration's final image from a seed: each process's pages KEPT, sent ahead (as zero runs) in PRECOPY records. */
function migrationOf(image: Buffer): Buffer {
  const records = splitImage(image);
  const pages = records.filter((r) => r.type === RECORD.PAGES && r.payload.readUInt32LE(0) === 0);
  const out: ImageRecord[] = [];
  for (const r of records) {
    out.push(r.type === RECORD.PAGES && r.payload.readUInt32LE(0) === 0 ? { type: r.type, payload: withRunKind(r.payload, RUN_KEPT) } : r);
    if (r.type === RECORD.HEADER) for (const p of pages) out.push({ type: RECORD.PRECOPY, payload: p.payload });
  }
  return joinImage(out);
}

const fuzzSkip = fuzzerMissing();
if (fuzzSkip) console.log(`fuzz-restore-plan: skipped: ${fuzzSkip}`);

describe('the seed corpus of the restorer\'s planning', () => {
  it.runIf(process.env.VOS_WRITE_FUZZ_SEEDS === '1')('derives the plan seeds from the image reader\'s', () => {
    mkdirSync(PLAN_SEEDS, { recursive: true });
    writeFileSync(join(PLAN_SEEDS, 'migration.img'), migrationOf(readFileSync(join(SEEDS, 'pipeline.img'))));
  });

  it('each plan seed is an image that vos-init verify accepts, smaller than 64 KiB', () => {
    const seeds = readdirSync(PLAN_SEEDS);
    expect(seeds.length).toBeGreaterThanOrEqual(1);
    for (const seed of seeds) {
      const file = join(PLAN_SEEDS, seed);
      expect(statSync(file).size).toBeLessThan(64 * 1024);
      const r = spawnSync(INIT, ['verify', file], { encoding: 'utf8' });
      expect(r.stderr, seed).toBe('');
      expect(r.status, seed).toBe(0);
    }
  });
});

describe.skipIf(fuzzSkip !== null)('the restorer\'s planning under libFuzzer', () => {
  let out: string;
  let fuzzer: string;
  beforeAll(() => {
    out = mkdtempSync('/tmp/vos-fuzz-plan-');
    fuzzer = join(out, 'fuzz-restore-plan');
    execFileSync('make', ['-s', '-C', RUNTIME, `OUT=${out}`, fuzzer], { stdio: 'inherit' });
  }, 120_000);
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('every committed crash input and every seed runs through it cleanly', () => {
    const dirs = [SEEDS, PLAN_SEEDS, ...(existsSync(REGRESSIONS) ? [REGRESSIONS] : [])];
    const inputs = dirs.flatMap((d) => readdirSync(d).map((f) => join(d, f)));
    const r = runInputs(fuzzer, out, inputs);
    expect(r.status, r.stderr.slice(-4000)).toBe(0);
  }, 150_000);

  it('a short run from the seeds finds nothing', () => {
    const r = runFor(fuzzer, out, 5, [SEEDS, PLAN_SEEDS]);
    expect(r.status, r.stderr.slice(-4000)).toBe(0);
  }, 150_000);
});
