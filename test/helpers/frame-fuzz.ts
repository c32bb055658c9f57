/**
 * A small seeded mutation fuzzer for the decoders of bytes that come from outside: the local
 * API's frames (base/frame-codec.ts) and the link's frames (base/link-frame.ts). It takes valid
 * byte streams from a seed corpus in the tree (test/unit/fuzz-seeds/TARGET/seed-*.hex), mutates
 * them (bit flips, special bytes, truncation, length fields edited, ranges dropped, duplicated or
 * spliced in from another seed, random bytes inserted, long tails up to past the decoder's
 * limit), feeds them to a fresh decoder in random
 * chunks, and checks:
 *   - the decoder throws nothing but its typed error (with one of its codes), and after that
 *     refuses all input with that error;
 *   - it never holds more than its stated limit of pending bytes, and no frame it returns is
 *     larger than its limits;
 *   - every frame it returns re-encodes to bytes that decode to the same frame (round trip), and
 *     an unmutated seed decodes whole, in any chunking, to the same frames as fed at once.
 * Everything follows from one seed (mulberry32), so a failure replays: it names the seed and the
 * iteration, and writes the input to a file to keep as a regression (regress-*.hex).
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Decoder<F> {
  push(chunk: Buffer): F[];
  readonly pendingBytes: number;
}

/** One decoder under test. F: what it returns per frame. */
export interface FuzzTarget<F> {
  /** The directory name of its corpus under test/unit/fuzz-seeds. */
  name: string;
  newDecoder(): Decoder<F>;
  /**
   * A decoder for the round trip, with room to spare: re-encoding can make JSON a little longer
   * than it came (1e21 becomes 1e+21), which is no fault of the decoder.
   */
  newRoundTripDecoder(): Decoder<F>;
  /** Its own error class and codes: anything else thrown is a finding. */
  isTypedError(err: unknown): boolean;
  /** The most pending bytes it may hold after a push returns (its stated limit). */
  maxPendingBytes: number;
  /** Why a decoded frame breaks the decoder's limits, or null. */
  frameProblem(frame: F): string | null;
  /** The frame's bytes, as the sending side would write them. */
  encode(frame: F): Buffer;
  /** The offsets of the frames' length fields (u32 big-endian) in a valid stream. */
  lengthFields(stream: Buffer): number[];
  /** A comparable view of a frame (Buffers as text). */
  view(frame: F): unknown;
}

export interface Corpus {
  /** Valid streams: each decodes whole without an error. */
  seeds: Array<{ file: string; bytes: Buffer }>;
  /** Inputs that once broke the decoder: each may be refused, never crash it. */
  regressions: Array<{ file: string; bytes: Buffer }>;
}

export const SEEDS_DIR = fileURLToPath(new URL('../unit/fuzz-seeds', import.meta.url));

/** Hex text, whitespace ignored, `#` to the end of a line a comment. */
export function parseHex(text: string): Buffer {
  const hex = text.replace(/#.*$/gm, '').replace(/\s+/g, '');
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(hex)) throw new Error('not an even number of hex digits');
  return Buffer.from(hex, 'hex');
}

export function formatHex(bytes: Buffer, comment: string): string {
  const lines = [`# ${comment}`];
  const hex = bytes.toString('hex');
  for (let i = 0; i < hex.length; i += 64) lines.push(hex.slice(i, i + 64));
  return lines.join('\n') + '\n';
}

export function loadCorpus(target: string): Corpus {
  const dir = join(SEEDS_DIR, target);
  const files = readdirSync(dir).filter((f) => f.endsWith('.hex')).sort();
  const read = (prefix: string): Corpus['seeds'] =>
    files.filter((f) => f.startsWith(prefix)).map((file) => ({ file, bytes: parseHex(readFileSync(join(dir, file), 'utf8')) }));
  return { seeds: read('seed-'), regressions: read('regress-') };
}

export interface FuzzStats {
  inputs: number;
  refused: number;
  frames: number;
  mutated: number;
}

/** What went wrong, with what replays it. */
export class FuzzFinding extends Error {}

/** Runs `target` on `input` cut into pieces by `rand`; returns the frames, or the typed error. Throws a FuzzFinding. */
export function check<F>(target: FuzzTarget<F>, input: Buffer, rand: () => number, where: string): { frames: F[]; refused: boolean } {
  const decoder = target.newDecoder();
  const frames: F[] = [];
  const maxPiece = 1 + Math.floor(rand() * (rand() < 0.2 ? 8 : 600));
  try {
    for (let at = 0; at < input.length; ) {
      const n = Math.floor(rand() * (maxPiece + 1)); // empty pieces too
      frames.push(...decoder.push(input.subarray(at, at + n)));
      at += n;
      if (decoder.pendingBytes > target.maxPendingBytes) {
        throw new FuzzFinding(`${where}: ${decoder.pendingBytes} bytes pending, more than the limit of ${target.maxPendingBytes}`);
      }
    }
  } catch (err) {
    if (err instanceof FuzzFinding) throw err;
    if (!target.isTypedError(err)) throw new FuzzFinding(`${where}: threw ${err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err)}`);
    let after: unknown = null;
    try {
      decoder.push(Buffer.alloc(1));
    } catch (e) {
      after = e;
    }
    if (!target.isTypedError(after)) throw new FuzzFinding(`${where}: took input after its error (then: ${String(after)})`);
    return { frames, refused: true };
  }
  for (const frame of frames) {
    const problem = target.frameProblem(frame);
    if (problem) throw new FuzzFinding(`${where}: returned a frame beyond its limits: ${problem}`);
    // It re-encodes, and those bytes decode to a frame that encodes the same (one cycle makes
    // JSON canonical: -0 becomes 0, key order stays).
    let again: F[];
    let bytes: Buffer;
    try {
      bytes = target.encode(frame);
      again = target.newRoundTripDecoder().push(bytes);
    } catch (err) {
      throw new FuzzFinding(`${where}: a decoded frame does not round-trip: ${String(err)}`);
    }
    if (again.length !== 1 || !target.encode(again[0]!).equals(bytes)) {
      throw new FuzzFinding(`${where}: a decoded frame does not round-trip: ${JSON.stringify(target.view(frame)).slice(0, 200)}`);
    }
  }
  return { frames, refused: false };
}

/** One mutation of `input` (seeds: the other valid streams, for splicing). */
function mutate<F>(target: FuzzTarget<F>, input: Buffer, seeds: Buffer[], fields: number[], rand: () => number): Buffer {
  const pick = (n: number): number => Math.floor(rand() * n);
  let out = Buffer.from(input);
  const at = pick(out.length + 1);
  switch (pick(10)) {
    case 0: // flip a bit
      if (out.length) out[Math.min(at, out.length - 1)]! ^= 1 << pick(8);
      break;
    case 1: // a special byte
      if (out.length) out[Math.min(at, out.length - 1)] = [0, 0xff, 0x7f, 0x80, 0x01, 0x22, 0x5c, 0x7b][pick(8)]!;
      break;
    case 2: // truncate
      out = out.subarray(0, at);
      break;
    case 3: {
      // a length field edited: off by a little, zero, huge, the limit and around it
      const field = fields.length && rand() < 0.8 ? fields[pick(fields.length)]! : at;
      if (field + 4 > out.length) break;
      const old = out.readUInt32BE(field);
      const limit = target.maxPendingBytes;
      const values = [0, 1, old + 1, Math.max(0, old - 1), old * 2, limit, limit + 1, limit - 9, 0x7fffffff, 0xffffffff, pick(0x100000000)];
      out.writeUInt32BE(values[pick(values.length)]! >>> 0, field);
      break;
    }
    case 4: {
      // drop a range
      const end = Math.min(out.length, at + 1 + pick(32));
      out = Buffer.concat([out.subarray(0, at), out.subarray(end)]);
      break;
    }
    case 5: {
      // duplicate a range somewhere
      const end = Math.min(out.length, at + 1 + pick(128));
      const to = pick(out.length + 1);
      out = Buffer.concat([out.subarray(0, to), out.subarray(at, end), out.subarray(to)]);
      break;
    }
    case 6: {
      // splice: this one's start with another seed's end
      const other = seeds[pick(seeds.length)]!;
      out = Buffer.concat([out.subarray(0, at), other.subarray(pick(other.length + 1))]);
      break;
    }
    case 7: {
      // random bytes inserted
      const junk = Buffer.from(Array.from({ length: 1 + pick(16) }, () => pick(256)));
      out = Buffer.concat([out.subarray(0, at), junk, out.subarray(at)]);
      break;
    }
    case 8: {
      // a long tail of one byte value, up to past the decoder's limit: what a length field
      // edited upward would make it wait for
      const limit = target.maxPendingBytes;
      const n = rand() < 0.5 ? limit - 64 + pick(256) : 1 + pick(limit);
      out = Buffer.concat([out.subarray(0, at), Buffer.alloc(Math.max(1, n), [0, 0x20, 0x7b, 0xff][pick(4)]!), out.subarray(at)]);
      break;
    }
    default: {
      // a whole other seed appended (valid after valid)
      out = Buffer.concat([out, seeds[pick(seeds.length)]!]);
    }
  }
  return out;
}

export interface FuzzRun {
  seed: number;
  /** Stop after this many inputs, or this many milliseconds, whichever first; but not before
   * `minInputs` (default 0): a busy machine gets fewer inputs into the time, not too few. */
  iterations: number;
  ms: number;
  minInputs?: number;
  /** Where a failing input is written (default: a new /tmp/vos-fuzz-* directory). */
  keepDir?: string;
}

/**
 * Fuzzes `target` from its corpus. Throws a FuzzFinding naming the seed, the iteration and a
 * file holding the input.
 */
export function fuzz<F>(target: FuzzTarget<F>, corpus: Corpus, run: FuzzRun): FuzzStats {
  const rand = prng(run.seed);
  const seeds = corpus.seeds.map((s) => s.bytes);
  if (seeds.length === 0) throw new Error(`no seeds for ${target.name}`);
  const fields = seeds.map((s) => target.lengthFields(s));
  const stats: FuzzStats = { inputs: 0, refused: 0, frames: 0, mutated: 0 };
  const started = Date.now();
  const minInputs = run.minInputs ?? 0;
  for (let i = 0; i < run.iterations && (i < minInputs || Date.now() - started < run.ms); i++) {
    const k = Math.floor(rand() * seeds.length);
    let input = seeds[k]!;
    const rounds = rand() < 0.1 ? 0 : 1 + Math.floor(rand() * 4);
    for (let m = 0; m < rounds; m++) input = mutate(target, input, seeds, m === 0 ? fields[k]! : [], rand);
    if (rounds) stats.mutated++;
    const where = `${target.name}: seed ${run.seed}, input ${i}`;
    try {
      const { frames, refused } = check(target, input, rand, where);
      stats.inputs++;
      stats.frames += frames.length;
      if (refused) stats.refused++;
      else if (rounds === 0 && frames.length === 0 && input.length > 0) throw new FuzzFinding(`${where}: a seed decoded to nothing`);
    } catch (err) {
      if (!(err instanceof FuzzFinding)) throw err;
      const dir = run.keepDir ?? mkdtempSync(join(tmpdir(), 'vos-fuzz-'));
      const file = join(dir, `regress-${run.seed}-${i}.hex`);
      writeFileSync(file, formatHex(input, err.message));
      throw new FuzzFinding(`${err.message}\n  input written to ${file} (keep it in test/unit/fuzz-seeds/${target.name}/ with the fix)`);
    }
  }
  return stats;
}

/** Each seed decodes whole, the same in random chunks as at once; returns the frames' views. */
export function checkSeeds<F>(target: FuzzTarget<F>, corpus: Corpus, seed: number): void {
  const rand = prng(seed);
  for (const { file, bytes } of corpus.seeds) {
    const whole = target.newDecoder();
    const frames = whole.push(bytes);
    if (whole.pendingBytes !== 0) throw new FuzzFinding(`${target.name}/${file}: ${whole.pendingBytes} bytes left over`);
    for (let round = 0; round < 20; round++) {
      const { frames: chunked, refused } = check(target, bytes, rand, `${target.name}/${file} (seed ${seed}, round ${round})`);
      if (refused || !isDeepStrictEqual(chunked.map(target.view), frames.map(target.view))) {
        throw new FuzzFinding(`${target.name}/${file}: decodes differently in chunks (seed ${seed}, round ${round})`);
      }
    }
  }
}
