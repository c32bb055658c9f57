/**
 * The image reader under libFuzzer (src-main/runtime/fuzz/image-reader.c, with AddressSanitizer
 * and UndefinedBehaviorSanitizer): every committed crash input (test/runtime/fuzz/regressions/)
 * and every seed run once, then a short run from the seed corpus (a few seconds; the long run is
 * scripts/fuzz.sh). Skipped, saying why, where clang's fuzzer runtime is missing.
 *
 * The seeds (src-main/runtime/fuzz/seeds/) are real images of tiny programs, made smaller with
 * test/helpers/image-edit.ts (no file contents, page data as zero runs). To make them again:
 *   VOS_WRITE_FUZZ_SEEDS=1 npx vitest run test/runtime/fuzz-image.test.ts
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pty from '@lydell/node-pty';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RECORD } from '../../src-main/agent/runtime/image-records.js';
import { joinImage, splitImage, type ImageRecord } from '../helpers/image-edit.js';
import { ROOT, waitFor } from '../helpers/agent-process.js';
import { fuzzerMissing, runFor, runInputs } from '../helpers/libfuzzer.js';
import { RUNTIME_DIR } from '../helpers/runtime-dir.js';

const RUNTIME = join(ROOT, 'src-main', 'runtime');
const SEEDS = join(RUNTIME, 'fuzz', 'seeds');
const REGRESSIONS = join(ROOT, 'test', 'runtime', 'fuzz', 'regressions');
const INIT = join(RUNTIME_DIR, 'vos-init');
const LIB = join(RUNTIME_DIR, 'libvos.so');
const MAX_SEED = 64 * 1024;

/** A seed from a real image: no file contents, every page run a zero run (the same places). */
function shrink(image: Buffer): Buffer {
  const records: ImageRecord[] = [];
  for (const r of splitImage(image)) {
    if (r.type === RECORD.FILEDATA) continue;
    if (r.type !== RECORD.PAGES) {
      records.push(r);
      continue;
    }
    const parts = [r.payload.subarray(0, 8)];
    for (let at = 8; at + 16 <= r.payload.length; ) {
      const run = Buffer.from(r.payload.subarray(at, at + 16));
      const npages = run.readUInt32LE(8);
      at += 16 + (run.readUInt32LE(12) === 0 ? npages * 4096 : 0);
      run.writeUInt32LE(1, 12); // zero
      parts.push(run);
    }
    records.push({ type: r.type, payload: Buffer.concat(parts) });
  }
  return joinImage(records);
}

/** A checkpoint of `command` run in a pod on a pty (no SESSION: the runtime's own kind of image);
 * incremental: the second of two incremental checkpoints (CHAIN of depth 1, PARENT runs, FILEREF
 * records), the first its parent. */
async function imageOf(dir: string, name: string, command: string[], incremental = false): Promise<Buffer> {
  const control = join(dir, `${name}.sock`);
  const term = pty.spawn(INIT, ['launch', '--control', control, '--runtime', LIB, '--', ...command], { cols: 80, rows: 24, env: process.env as Record<string, string> });
  let out = '';
  term.onData((d) => (out += d));
  try {
    await waitFor('the program to run', () => out.includes('ready'));
    const file = join(dir, `${name}.img`);
    const checkpoint = (args: string[]): string => {
      const fd = openSync(file, 'w', 0o600);
      try {
        return execFileSync(INIT, ['checkpoint', '--control', control, ...args], { stdio: ['ignore', 'pipe', 'inherit', fd], encoding: 'utf8' });
      } finally {
        closeSync(fd);
      }
    };
    const parent = incremental ? /image_id=([0-9a-f]{32})/.exec(checkpoint(['--incremental']))![1]! : null;
    checkpoint(parent ? ['--incremental', '--parent', parent, '--stop'] : ['--stop']);
    return readFileSync(file);
  } finally {
    term.kill('SIGKILL');
  }
}

const fuzzSkip = fuzzerMissing();
if (fuzzSkip) console.log(`fuzz-image: skipped: ${fuzzSkip}`);

describe('the seed corpus of the image reader', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync('/tmp/vos-seeds-');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.runIf(process.env.VOS_WRITE_FUZZ_SEEDS === '1')('writes the seeds from checkpoints of tiny programs', async () => {
    mkdirSync(SEEDS, { recursive: true });
    const programs: Record<string, string[]> = {
      sleep: ['sh', '-c', 'echo ready; exec sleep 1000'],
      pipeline: ['sh', '-c', 'echo ready; sleep 1000 | cat'],
    };
    // The kinds of things the later records describe: listening sockets (TCP and a Unix path, one
    // client queued), file locks (flock and a POSIX range), an inotify watch (tail -f).
    const followed = join(dir, 'followed.txt');
    writeFileSync(followed, 'one\n');
    const server = [
      'import socket, fcntl, sys',
      "t = socket.socket(); t.bind(('127.0.0.1', 0)); t.listen(4)",
      `u = socket.socket(socket.AF_UNIX); u.bind('${join(dir, 'u.sock')}'); u.listen(2)`,
      `c = socket.socket(socket.AF_UNIX); c.connect('${join(dir, 'u.sock')}')`,
      `f = open('${join(dir, 'locked')}', 'w'); fcntl.flock(f, fcntl.LOCK_EX)`,
      `g = open('${join(dir, 'ranged')}', 'w'); fcntl.lockf(g, fcntl.LOCK_EX, 10, 0)`,
      "print('ready', flush=True); sys.stdin.read()",
    ].join('\n');
    programs.resources = ['sh', '-c', `tail -f ${followed} & exec python3 -c "${server}"`];
    for (const [name, command] of Object.entries(programs)) writeFileSync(join(SEEDS, `${name}.img`), shrink(await imageOf(dir, name, command)));
    writeFileSync(join(SEEDS, 'incremental.img'), shrink(await imageOf(dir, 'incremental', programs.sleep!, true)));
  });

  it('each seed is a real image, smaller than 64 KiB, that vos-init verify accepts (the incremental one: all but its parent)', () => {
    const seeds = readdirSync(SEEDS);
    expect(seeds.length).toBeGreaterThanOrEqual(3);
    for (const seed of seeds) {
      const file = join(SEEDS, seed);
      expect(statSync(file).size).toBeLessThan(MAX_SEED);
      const r = spawnSync(INIT, ['verify', file], { encoding: 'utf8' });
      if (seed === 'incremental.img') {
        expect(r.stderr).toMatch(/is an incremental image: restoring it needs its parent image/);
        expect(splitImage(readFileSync(file)).some((rec) => rec.type === RECORD.FILEREF)).toBe(true);
        continue;
      }
      expect(r.stderr, seed).toBe('');
      expect(r.status, seed).toBe(0);
    }
  });
});

describe.skipIf(fuzzSkip !== null)('the image reader under libFuzzer', () => {
  let out: string;
  let fuzzer: string;
  beforeAll(() => {
    out = mkdtempSync('/tmp/vos-fuzz-');
    fuzzer = join(out, 'fuzz-image-reader');
    execFileSync('make', ['-s', '-C', RUNTIME, `OUT=${out}`, fuzzer], { stdio: 'inherit' });
  }, 120_000);
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('every committed crash input and every seed runs through it cleanly', () => {
    const inputs = [...readdirSync(SEEDS).map((f) => join(SEEDS, f)), ...(existsSync(REGRESSIONS) ? readdirSync(REGRESSIONS).map((f) => join(REGRESSIONS, f)) : [])];
    const r = runInputs(fuzzer, out, inputs);
    expect(r.status, r.stderr.slice(-4000)).toBe(0);
  }, 150_000);

  it('a short run from the seeds finds nothing', () => {
    const r = runFor(fuzzer, out, 5, [SEEDS]);
    expect(r.status, r.stderr.slice(-4000)).toBe(0);
  }, 150_000);
});
