/**
 * Fuzzing the decoders of bytes from outside (test/helpers/frame-fuzz.ts): the local API's
 * frames and the link's frames, from the seed corpus in test/unit/fuzz-seeds. A short run here,
 * with a fixed seed and a fresh random one (printed, and named in any failure; replay it with
 * FUZZ_SEED=N); scripts/fuzz-frames.sh runs it for longer (FUZZ_MS). Every kept regression
 * (regress-*.hex) is run as is.
 */
import { describe, expect, it } from 'vitest';
import { FRAME_HEADER_BYTES, FrameDecoder, FrameError, encodeFrame } from '../../src-main/base/frame-codec.js';
import { LINK_FRAME_HEADER_BYTES, LinkFrameDecoder, LinkFrameError, MAX_DATA_BYTES, encodeLinkFrame, type LinkFrame } from '../../src-main/base/link-frame.js';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FuzzFinding, check, checkSeeds, fuzz, loadCorpus, parseHex, prng, type FuzzTarget } from '../helpers/frame-fuzz.js';

const FIXED_SEED = 0x5eed2;
const RANDOM_SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : (Math.random() * 2 ** 32) >>> 0;
/** How long each target runs per seed: short in the suite, longer from scripts/fuzz-frames.sh. */
const MS = Number(process.env.FUZZ_MS ?? 600);
const ITERATIONS = process.env.FUZZ_MS !== undefined ? Number.MAX_SAFE_INTEGER : 4000;

/** Small limits, so edited length fields reach them and past them. */
const API_MAX = 4096;
const LINK_JSON_MAX = 4096;

const apiFrames: FuzzTarget<unknown> = {
  name: 'api-frame',
  newDecoder: () => new FrameDecoder(API_MAX),
  newRoundTripDecoder: () => new FrameDecoder(2 * API_MAX),
  isTypedError: (err) => err instanceof FrameError && (err.code === 'bad_frame' || err.code === 'frame_too_large'),
  // A frame not yet complete: its header and less than its (allowed) length.
  maxPendingBytes: FRAME_HEADER_BYTES + API_MAX - 1,
  frameProblem: () => null, // any JSON value; its size was judged by the header
  encode: (value) => encodeFrame(value),
  lengthFields(stream) {
    const fields: number[] = [];
    for (let at = 0; at + FRAME_HEADER_BYTES <= stream.length; at += FRAME_HEADER_BYTES + stream.readUInt32BE(at)) fields.push(at);
    return fields;
  },
  view: (value) => value,
};

const linkFrames: FuzzTarget<LinkFrame> = {
  name: 'link-frame',
  newDecoder: () => new LinkFrameDecoder({ maxJsonBytes: LINK_JSON_MAX }),
  newRoundTripDecoder: () => new LinkFrameDecoder({ maxJsonBytes: 2 * LINK_JSON_MAX }),
  isTypedError: (err) => err instanceof LinkFrameError && (err.code === 'bad_frame' || err.code === 'frame_too_large'),
  maxPendingBytes: LINK_FRAME_HEADER_BYTES + Math.max(LINK_JSON_MAX, MAX_DATA_BYTES) - 1,
  frameProblem(f) {
    const stream = f.stream;
    const linkKind = f.kind === 'hello' || f.kind === 'control' || f.kind === 'rpc' || f.kind === 'ping' || f.kind === 'pong';
    if (linkKind ? stream !== 0 : !(Number.isInteger(stream) && stream >= 1 && stream <= 0xffffffff)) return `${f.kind} on stream ${stream}`;
    if (f.kind === 'data' && (f.data.length < 1 || f.data.length > MAX_DATA_BYTES)) return `DATA of ${f.data.length} bytes`;
    if ((f.kind === 'ping' || f.kind === 'pong') && f.nonce.length !== 8) return `a nonce of ${f.nonce.length} bytes`;
    if (f.kind === 'credit' && !(f.bytes >= 1 && f.bytes <= 0xffffffff)) return `a credit of ${f.bytes}`;
    return null;
  },
  encode: (f) => encodeLinkFrame(f),
  lengthFields(stream) {
    const fields: number[] = [];
    for (let at = 0; at + LINK_FRAME_HEADER_BYTES <= stream.length; at += LINK_FRAME_HEADER_BYTES + stream.readUInt32BE(at + 5)) fields.push(at + 5);
    return fields;
  },
  view(f) {
    if (f.kind === 'data') return { ...f, data: f.data.toString('base64') };
    if (f.kind === 'ping' || f.kind === 'pong') return { ...f, nonce: f.nonce.toString('base64') };
    return f;
  },
};

describe.each([
  { target: apiFrames as FuzzTarget<unknown> },
  { target: linkFrames as FuzzTarget<unknown> },
])('fuzzing the $target.name decoder', ({ target }) => {
  const corpus = loadCorpus(target.name);

  it('decodes every seed whole, the same in any chunking', () => {
    expect(corpus.seeds.length).toBeGreaterThanOrEqual(4);
    checkSeeds(target, corpus, FIXED_SEED);
  });

  it('takes every kept regression without anything but its own error', () => {
    const rand = prng(FIXED_SEED);
    for (const { file, bytes } of corpus.regressions) check(target, bytes, rand, `${target.name}/${file}`);
  });

  it.each([
    { kind: 'fixed', seed: FIXED_SEED },
    { kind: 'random', seed: RANDOM_SEED },
  ])('survives mutated seeds ($kind seed $seed)', { timeout: MS * 4 + 10_000 }, ({ seed }) => {
    const stats = fuzz(target, corpus, { seed, iterations: ITERATIONS, ms: MS, minInputs: 500 });
    console.log(`[frame-fuzz] ${target.name} seed ${seed}: ${JSON.stringify(stats)}`);
    expect(stats.inputs).toBeGreaterThan(100);
    // The mutations reach both outcomes: refused and decoded.
    expect(stats.refused).toBeGreaterThan(0);
    expect(stats.frames).toBeGreaterThan(stats.inputs / 2);
  });
});

describe('the fuzzer itself', () => {
  it('finds a decoder that buffers past its limit or throws a plain error, and keeps the input', () => {
    const corpus = loadCorpus('api-frame');
    const dir = mkdtempSync(join(tmpdir(), 'vos-fuzz-test-'));
    try {
      // Waits for any length (no limit): an edited length field makes it hold too much.
      const greedy: FuzzTarget<unknown> = { ...apiFrames, newDecoder: () => new FrameDecoder(0xffffffff) };
      expect(() => fuzz(greedy, corpus, { seed: FIXED_SEED, iterations: 4000, ms: 5000, keepDir: dir })).toThrow(FuzzFinding);
      // Throws a TypeError on bad JSON instead of its FrameError.
      const sloppy: FuzzTarget<unknown> = {
        ...apiFrames,
        newDecoder: () => {
          const d = new FrameDecoder(API_MAX);
          return {
            push: (chunk: Buffer) => {
              try {
                return d.push(chunk);
              } catch {
                throw new TypeError('oops');
              }
            },
            get pendingBytes() {
              return d.pendingBytes;
            },
          };
        },
      };
      let finding: unknown = null;
      try {
        fuzz(sloppy, corpus, { seed: FIXED_SEED, iterations: 4000, ms: 5000, keepDir: dir });
      } catch (err) {
        finding = err;
      }
      expect(finding).toBeInstanceOf(FuzzFinding);
      expect((finding as Error).message).toMatch(new RegExp(`api-frame: seed ${FIXED_SEED}, input \\d+: threw TypeError: oops`));
      // The input is kept, and replays the finding.
      const kept = readdirSync(dir).filter((f) => f.startsWith('regress-'));
      expect(kept.length).toBe(2);
      const file = kept.find((f) => readFileSync(join(dir, f), 'utf8').includes('TypeError'))!;
      expect(() => check(sloppy, parseHex(readFileSync(join(dir, file), 'utf8')), prng(1), 'replay')).toThrow(/threw TypeError/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
