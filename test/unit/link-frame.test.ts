import { describe, expect, it } from 'vitest';
import {
  FrameKind,
  LINK_FRAME_HEADER_BYTES,
  LinkFrameDecoder,
  LinkFrameError,
  MAX_DATA_BYTES,
  encodeLinkFrame,
  type LinkFrame,
} from '../../src-main/base/link-frame.js';

/** Random tests use this seed; set LINK_FRAME_SEED to replay a failure. */
const SEED = Number(process.env.LINK_FRAME_SEED ?? 0x5eed1);

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randInt(rand: () => number, below: number): number {
  return Math.floor(rand() * below);
}

function randomBytes(rand: () => number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = randInt(rand, 256);
  return out;
}

/** A frame as the wire has it, with any kind, stream, declared length and payload. */
function raw(kind: number, stream: number, payload: Buffer | string, length?: number): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const head = Buffer.alloc(LINK_FRAME_HEADER_BYTES);
  head.writeUInt8(kind, 0);
  head.writeUInt32BE(stream, 1);
  head.writeUInt32BE(length ?? body.length, 5);
  return Buffer.concat([head, body]);
}

/** Cuts `bytes` into pieces of 0..maxPiece bytes (empty pieces included). */
function split(bytes: Buffer, rand: () => number, maxPiece: number): Buffer[] {
  const pieces: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const n = randInt(rand, maxPiece + 1);
    pieces.push(bytes.subarray(at, at + n));
    at += n;
  }
  return pieces;
}

function decodeAll(decoder: LinkFrameDecoder, pieces: Buffer[]): LinkFrame[] {
  const out: LinkFrame[] = [];
  for (const piece of pieces) out.push(...decoder.push(piece));
  return out;
}

function caught(fn: () => unknown): LinkFrameError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(LinkFrameError);
    return err as LinkFrameError;
  }
  throw new Error('expected a LinkFrameError, nothing was thrown');
}

/**
 * Frames with their buffers as base64 text: toEqual walks a Buffer byte by byte, far too slowly
 * for 256 KiB of DATA, while strings compare at once.
 */
function view(frames: LinkFrame[]): unknown[] {
  return frames.map((f) => {
    if (f.kind === 'data') return { ...f, data: f.data.toString('base64') };
    if (f.kind === 'ping' || f.kind === 'pong') return { ...f, nonce: f.nonce.toString('base64') };
    return f;
  });
}

const LIMITS = { maxJsonBytes: 64 * 1024 };

const bigData = Buffer.alloc(MAX_DATA_BYTES);
for (let i = 0; i < bigData.length; i++) bigData[i] = (i * 31 + 7) & 0xff;

const EVERY_KIND: LinkFrame[] = [
  { kind: 'hello', stream: 0, json: { protocol: 1, agent: 'ünïcødé ✓', caps: ['a', 'b'] } },
  { kind: 'control', stream: 0, json: { t: 'pair', code: '123-456' } },
  { kind: 'rpc', stream: 0, json: [1, 'two', null, { three: 3.5 }] },
  { kind: 'open', stream: 1, json: { carries: 'image', session: 's1' } },
  { kind: 'data', stream: 1, data: Buffer.from([0]) },
  { kind: 'data', stream: 0xffffffff, data: bigData },
  { kind: 'credit', stream: 1, bytes: 1 },
  { kind: 'credit', stream: 7, bytes: 0xffffffff },
  { kind: 'end', stream: 1 },
  { kind: 'reset', stream: 9, json: { reason: 'cancelled by the user' } },
  { kind: 'ping', stream: 0, nonce: Buffer.from('01234567') },
  { kind: 'pong', stream: 0, nonce: Buffer.from([255, 0, 255, 0, 1, 2, 3, 4]) },
  { kind: 'rpc', stream: 0, json: 'last' },
];
const EVERY_KIND_BYTES = Buffer.concat(EVERY_KIND.map(encodeLinkFrame));

describe('link frame codec', () => {
  it('writes the header as documented', () => {
    const bytes = encodeLinkFrame({ kind: 'credit', stream: 0x01020304, bytes: 0x0a0b0c0d });
    expect([...bytes]).toEqual([FrameKind.CREDIT, 1, 2, 3, 4, 0, 0, 0, 4, 10, 11, 12, 13]);
    expect([...encodeLinkFrame({ kind: 'end', stream: 2 })]).toEqual([7, 0, 0, 0, 2, 0, 0, 0, 0]);
    expect(encodeLinkFrame({ kind: 'rpc', stream: 0, json: { a: 1 } }).subarray(9).toString()).toBe('{"a":1}');
  });

  it('round-trips every kind fed whole', () => {
    const d = new LinkFrameDecoder(LIMITS);
    expect(view(d.push(EVERY_KIND_BYTES))).toEqual(view(EVERY_KIND));
    expect(d.pendingBytes).toBe(0);
  });

  it('round-trips every kind fed byte by byte', () => {
    const ends: number[] = [];
    for (const frame of EVERY_KIND) ends.push((ends.at(-1) ?? 0) + encodeLinkFrame(frame).length);
    const d = new LinkFrameDecoder(LIMITS);
    const out: LinkFrame[] = [];
    let wrongPending = 0;
    for (let i = 0; i < EVERY_KIND_BYTES.length; i++) {
      out.push(...d.push(EVERY_KIND_BYTES.subarray(i, i + 1)));
      // Every byte pushed is pending until the frame it belongs to is complete.
      if (d.pendingBytes !== i + 1 - (ends[out.length - 1] ?? 0)) wrongPending++;
    }
    expect(wrongPending).toBe(0);
    expect(view(out)).toEqual(view(EVERY_KIND));
    expect(d.pendingBytes).toBe(0);
  });

  it(`round-trips every kind split at random points (seed ${SEED})`, () => {
    const rand = prng(SEED);
    for (let round = 0; round < 40; round++) {
      const maxPiece = [5, 17, 100, 4096, 70_000, 300_000][round % 6]!;
      const pieces = split(EVERY_KIND_BYTES, rand, maxPiece);
      const d = new LinkFrameDecoder(LIMITS);
      const out = decodeAll(d, pieces);
      expect(view(out), `seed ${SEED}, round ${round}`).toEqual(view(EVERY_KIND));
      expect(d.pendingBytes).toBe(0);
    }
  });

  it('reports the bytes of an incomplete frame as pending', () => {
    const bytes = encodeLinkFrame({ kind: 'data', stream: 3, data: Buffer.alloc(100, 1) });
    const d = new LinkFrameDecoder(LIMITS);
    expect(d.push(bytes.subarray(0, 5))).toEqual([]);
    expect(d.pendingBytes).toBe(5);
    expect(d.push(bytes.subarray(5, 50))).toEqual([]);
    expect(d.pendingBytes).toBe(50);
    expect(d.push(bytes.subarray(50))).toHaveLength(1);
    expect(d.pendingBytes).toBe(0);
  });

  it('decodes many frames from one chunk', () => {
    const frames: LinkFrame[] = [];
    for (let i = 0; i < 10_000; i++) {
      if (i % 3 === 0) frames.push({ kind: 'rpc', stream: 0, json: { id: i } });
      else if (i % 3 === 1) frames.push({ kind: 'data', stream: (i % 5) + 1, data: Buffer.from([i & 0xff]) });
      else frames.push({ kind: 'credit', stream: (i % 5) + 1, bytes: i });
    }
    const tail = encodeLinkFrame({ kind: 'end', stream: 1 });
    const d = new LinkFrameDecoder(LIMITS);
    // The last frame is cut: everything before it comes out, its first bytes stay pending.
    const out = d.push(Buffer.concat([...frames.map(encodeLinkFrame), tail.subarray(0, 4)]));
    expect(out).toEqual(frames);
    expect(d.pendingBytes).toBe(4);
    expect(d.push(tail.subarray(4))).toEqual([{ kind: 'end', stream: 1 }]);
  });

  it('applies new limits from the next frame on', () => {
    const big = { blob: 'x'.repeat(100 * 1024) };
    const d = new LinkFrameDecoder({ maxJsonBytes: 64 * 1024 });
    d.setLimits({ maxJsonBytes: 64 * 1024 * 1024 });
    expect(d.push(encodeLinkFrame({ kind: 'rpc', stream: 0, json: big }))).toEqual([{ kind: 'rpc', stream: 0, json: big }]);
    d.setLimits({ maxJsonBytes: 64 * 1024 });
    const error = caught(() => d.push(encodeLinkFrame({ kind: 'rpc', stream: 0, json: big })));
    expect(error.code).toBe('frame_too_large');
    expect(() => new LinkFrameDecoder({ maxJsonBytes: -1 })).toThrow(RangeError);
    expect(() => d.setLimits({ maxJsonBytes: 1.5 })).toThrow(RangeError);
  });

  describe('refuses bad frames', () => {
    // [what, bytes, expected code, message pattern, whether the 9 header bytes alone must be refused]
    const cases: [string, Buffer, 'bad_frame' | 'frame_too_large', RegExp, boolean][] = [
      ['kind 0', raw(0, 0, '{}'), 'bad_frame', /unknown frame kind 0 \(stream 0/, true],
      ['kind 11', raw(11, 3, ''), 'bad_frame', /unknown frame kind 11 \(stream 3/, true],
      ['kind 255', raw(255, 0, '', 0xffffffff), 'bad_frame', /unknown frame kind 255/, true],
      ['HELLO on a stream', raw(1, 5, '{}'), 'bad_frame', /HELLO frame on stream 5: must be on stream 0/, true],
      ['CONTROL on a stream', raw(2, 1, '{}'), 'bad_frame', /CONTROL frame on stream 1: must be on stream 0/, true],
      ['RPC on a stream', raw(3, 0xffffffff, '{}'), 'bad_frame', /RPC frame on stream 4294967295: must be on stream 0/, true],
      ['PING on a stream', raw(9, 2, Buffer.alloc(8)), 'bad_frame', /PING frame on stream 2: must be on stream 0/, true],
      ['PONG on a stream', raw(10, 2, Buffer.alloc(8)), 'bad_frame', /PONG frame on stream 2: must be on stream 0/, true],
      ['OPEN on stream 0', raw(4, 0, '{}'), 'bad_frame', /OPEN frame on stream 0: needs a stream id/, true],
      ['DATA on stream 0', raw(5, 0, 'x'), 'bad_frame', /DATA frame on stream 0: needs a stream id/, true],
      ['CREDIT on stream 0', raw(6, 0, Buffer.alloc(4, 1)), 'bad_frame', /CREDIT frame on stream 0: needs a stream id/, true],
      ['END on stream 0', raw(7, 0, ''), 'bad_frame', /END frame on stream 0: needs a stream id/, true],
      ['RESET on stream 0', raw(8, 0, '{"reason":"x"}'), 'bad_frame', /RESET frame on stream 0: needs a stream id/, true],
      ['JSON over the limit', raw(3, 0, '', 1025), 'frame_too_large', /RPC frame on stream 0: JSON payload of 1025 bytes exceeds the limit of 1024/, true],
      ['OPEN over the limit', raw(4, 6, '', 2000), 'frame_too_large', /OPEN frame on stream 6: JSON payload of 2000 bytes exceeds the limit of 1024/, true],
      ['DATA over 256 KiB', raw(5, 1, '', MAX_DATA_BYTES + 1), 'frame_too_large', /DATA frame on stream 1: payload of 262145 bytes exceeds the limit of 262144/, true],
      ['empty DATA', raw(5, 1, ''), 'bad_frame', /DATA frame on stream 1: payload is empty/, true],
      ['CREDIT of 3 bytes', raw(6, 1, Buffer.alloc(3, 1)), 'bad_frame', /CREDIT frame on stream 1: payload is 3 bytes, needs exactly 4/, true],
      ['CREDIT of 5 bytes', raw(6, 1, Buffer.alloc(5, 1)), 'bad_frame', /CREDIT frame on stream 1: payload is 5 bytes, needs exactly 4/, true],
      ['CREDIT of 0', raw(6, 4, Buffer.alloc(4)), 'bad_frame', /CREDIT frame on stream 4: credit of 0 bytes/, false],
      ['PING of 7 bytes', raw(9, 0, Buffer.alloc(7)), 'bad_frame', /PING frame on stream 0: payload is 7 bytes, needs exactly 8/, true],
      ['PONG of 9 bytes', raw(10, 0, Buffer.alloc(9)), 'bad_frame', /PONG frame on stream 0: payload is 9 bytes, needs exactly 8/, true],
      ['PONG of 0 bytes', raw(10, 0, ''), 'bad_frame', /PONG frame on stream 0: payload is 0 bytes, needs exactly 8/, true],
      ['END with a payload', raw(7, 2, 'x'), 'bad_frame', /END frame on stream 2: payload is 1 bytes, needs none/, true],
      ['empty JSON', raw(1, 0, ''), 'bad_frame', /HELLO frame on stream 0: JSON payload is empty/, true],
      ['JSON that does not parse', raw(2, 0, '{not json'), 'bad_frame', /CONTROL frame on stream 0: payload is not valid JSON/, false],
      ['two JSON values', raw(3, 0, '{} {}'), 'bad_frame', /RPC frame on stream 0: payload is not valid JSON/, false],
      ['JSON with a byte-order mark', raw(3, 0, '\ufeff{}'), 'bad_frame', /RPC frame on stream 0: payload is not valid JSON/, false],
      ['JSON that is not UTF-8', raw(8, 3, Buffer.from([0x22, 0xc3, 0x28, 0x22])), 'bad_frame', /RESET frame on stream 3: JSON payload is not valid UTF-8/, false],
      ['JSON with an encoded surrogate', raw(4, 3, Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22])), 'bad_frame', /OPEN frame on stream 3: JSON payload is not valid UTF-8/, false],
    ];

    for (const [what, bytes, code, message, fromHeader] of cases) {
      it(what, () => {
        const good = encodeLinkFrame({ kind: 'rpc', stream: 0, json: { before: true } });
        const d = new LinkFrameDecoder({ maxJsonBytes: 1024 });
        expect(d.push(good)).toHaveLength(1);
        const error = caught(() => d.push(fromHeader ? bytes.subarray(0, LINK_FRAME_HEADER_BYTES) : bytes));
        expect(error.code).toBe(code);
        expect(error.message).toMatch(message);
        // The stream position is lost: nothing more is accepted, not even a good frame.
        const after = caught(() => d.push(good));
        expect(after.code).toBe('bad_frame');
        expect(after.message).toMatch(/already had a bad frame/);
        expect(() => d.push(Buffer.alloc(0))).toThrow(LinkFrameError);
      });
    }

    it('drops the frames before a bad one in the same chunk', () => {
      const d = new LinkFrameDecoder(LIMITS);
      const bytes = Buffer.concat([encodeLinkFrame({ kind: 'end', stream: 1 }), raw(42, 0, '')]);
      expect(caught(() => d.push(bytes)).message).toMatch(/unknown frame kind 42/);
    });
  });

  it('refuses a header announcing 4 GiB from the 9 header bytes alone', () => {
    for (const kind of [FrameKind.RPC, FrameKind.DATA, FrameKind.OPEN]) {
      const d = new LinkFrameDecoder({ maxJsonBytes: 64 * 1024 * 1024 });
      const head = raw(kind, kind === FrameKind.RPC ? 0 : 1, '', 0xffffffff);
      expect(head).toHaveLength(LINK_FRAME_HEADER_BYTES);
      for (let i = 0; i < LINK_FRAME_HEADER_BYTES - 1; i++) {
        expect(d.push(head.subarray(i, i + 1))).toEqual([]);
        expect(d.pendingBytes).toBe(i + 1);
      }
      const error = caught(() => d.push(head.subarray(LINK_FRAME_HEADER_BYTES - 1)));
      expect(error.code).toBe('frame_too_large');
      expect(error.message).toMatch(/4294967295 bytes exceeds the limit/);
      expect(d.pendingBytes).toBeLessThanOrEqual(LINK_FRAME_HEADER_BYTES);
    }
  });

  it('waits for a large accepted payload without allocating for it', () => {
    const d = new LinkFrameDecoder({ maxJsonBytes: 64 * 1024 * 1024 });
    expect(d.push(raw(FrameKind.RPC, 0, '', 64 * 1024 * 1024))).toEqual([]);
    expect(d.pendingBytes).toBe(LINK_FRAME_HEADER_BYTES);
    expect(d.push(Buffer.from('[1'))).toEqual([]);
    expect(d.pendingBytes).toBe(LINK_FRAME_HEADER_BYTES + 2);
  });

  describe('encodeLinkFrame refuses invalid frames', () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const cases: [string, unknown, 'bad_frame' | 'frame_too_large', RegExp][] = [
      ['an unknown kind', { kind: 'bogus', stream: 0 }, 'bad_frame', /unknown frame kind "bogus"/],
      ['a kind from the prototype', { kind: 'toString', stream: 0 }, 'bad_frame', /unknown frame kind "toString"/],
      ['DATA on stream 0', { kind: 'data', stream: 0, data: Buffer.from('x') }, 'bad_frame', /DATA frame on stream 0: needs a stream id/],
      ['END on a negative stream', { kind: 'end', stream: -1 }, 'bad_frame', /END frame on stream -1: needs a stream id/],
      ['OPEN on a fractional stream', { kind: 'open', stream: 1.5, json: {} }, 'bad_frame', /OPEN frame on stream 1.5/],
      ['RESET on a stream past u32', { kind: 'reset', stream: 2 ** 32, json: {} }, 'bad_frame', /RESET frame on stream 4294967296/],
      ['HELLO on a stream', { kind: 'hello', stream: 1, json: {} }, 'bad_frame', /HELLO frame on stream 1: must be on stream 0/],
      ['PING on a stream', { kind: 'ping', stream: 1, nonce: Buffer.alloc(8) }, 'bad_frame', /PING frame on stream 1/],
      ['empty DATA', { kind: 'data', stream: 1, data: Buffer.alloc(0) }, 'bad_frame', /payload is empty/],
      ['DATA over 256 KiB', { kind: 'data', stream: 1, data: Buffer.alloc(MAX_DATA_BYTES + 1) }, 'frame_too_large', /262145 bytes exceeds the limit of 262144/],
      ['DATA that is not a Buffer', { kind: 'data', stream: 1, data: 'text' }, 'bad_frame', /data is not a Buffer/],
      ['a CREDIT of 0', { kind: 'credit', stream: 1, bytes: 0 }, 'bad_frame', /credit of 0 is not an integer from 1/],
      ['a fractional CREDIT', { kind: 'credit', stream: 1, bytes: 2.5 }, 'bad_frame', /credit of 2.5/],
      ['a CREDIT past u32', { kind: 'credit', stream: 1, bytes: 2 ** 32 }, 'bad_frame', /credit of 4294967296/],
      ['a short nonce', { kind: 'pong', stream: 0, nonce: Buffer.alloc(7) }, 'bad_frame', /PONG frame on stream 0: payload is 7 bytes, needs exactly 8/],
      ['undefined JSON', { kind: 'rpc', stream: 0, json: undefined }, 'bad_frame', /RPC frame on stream 0: a undefined is not a JSON value/],
      ['a function as JSON', { kind: 'control', stream: 0, json: () => 1 }, 'bad_frame', /a function is not a JSON value/],
      ['a BigInt in JSON', { kind: 'rpc', stream: 0, json: { n: 1n } }, 'bad_frame', /cannot be serialized/],
      ['circular JSON', { kind: 'open', stream: 2, json: circular }, 'bad_frame', /OPEN frame on stream 2: JSON payload cannot be serialized/],
    ];
    for (const [what, frame, code, message] of cases) {
      it(what, () => {
        const error = caught(() => encodeLinkFrame(frame as LinkFrame));
        expect(error.code).toBe(code);
        expect(error.message).toMatch(message);
      });
    }
  });

  it(`survives random and mutated input with only LinkFrameErrors (fuzz, seed ${SEED})`, { timeout: 10_000 }, () => {
    const rand = prng(SEED ^ 0xf022);
    const maxJsonBytes = 300;

    const randomJson = (depth: number): unknown => {
      switch (randInt(rand, depth > 2 ? 4 : 6)) {
        case 0:
          return randInt(rand, 1000) - 500;
        case 1:
          return ['', 'ok', 'ünï ✓', '\u0000\ud83d\ude00', 'x'.repeat(randInt(rand, 40))][randInt(rand, 5)];
        case 2:
          return [true, false, null][randInt(rand, 3)];
        case 3:
          return rand() * 1e6;
        case 4:
          return Array.from({ length: randInt(rand, 4) }, () => randomJson(depth + 1));
        default:
          return Object.fromEntries(Array.from({ length: randInt(rand, 4) }, (_, i) => [`k${i}`, randomJson(depth + 1)]));
      }
    };
    const randomStream = (): number => (rand() < 0.1 ? 0xffffffff : 1 + randInt(rand, 8));
    const randomFrame = (): LinkFrame => {
      switch (randInt(rand, 10) + 1) {
        case FrameKind.HELLO:
          return { kind: 'hello', stream: 0, json: randomJson(0) };
        case FrameKind.CONTROL:
          return { kind: 'control', stream: 0, json: randomJson(0) };
        case FrameKind.RPC:
          return { kind: 'rpc', stream: 0, json: randomJson(0) };
        case FrameKind.OPEN:
          return { kind: 'open', stream: randomStream(), json: randomJson(0) };
        case FrameKind.DATA:
          return { kind: 'data', stream: randomStream(), data: randomBytes(rand, 1 + randInt(rand, 200)) };
        case FrameKind.CREDIT:
          return { kind: 'credit', stream: randomStream(), bytes: 1 + randInt(rand, 0xfffffffe) };
        case FrameKind.END:
          return { kind: 'end', stream: randomStream() };
        case FrameKind.RESET:
          return { kind: 'reset', stream: randomStream(), json: { reason: String(randomJson(2)) } };
        case FrameKind.PING:
          return { kind: 'ping', stream: 0, nonce: randomBytes(rand, 8) };
        default:
          return { kind: 'pong', stream: 0, nonce: randomBytes(rand, 8) };
      }
    };
    const validStream = (): Buffer => {
      const frames = Array.from({ length: 1 + randInt(rand, 12) }, randomFrame);
      return Buffer.concat(frames.map(encodeLinkFrame));
    };
    const mutate = (bytes: Buffer): Buffer => {
      let out = Buffer.from(bytes);
      const count = 1 + randInt(rand, 3);
      for (let m = 0; m < count && out.length > 0; m++) {
        const at = randInt(rand, out.length);
        switch (randInt(rand, 4)) {
          case 0: // flip some bits of a byte
            out[at] = out[at]! ^ (1 + randInt(rand, 255));
            break;
          case 1: // truncate
            out = out.subarray(0, at);
            break;
          case 2: {
            // duplicate a range in place
            const end = Math.min(out.length, at + 1 + randInt(rand, 64));
            const to = randInt(rand, out.length + 1);
            out = Buffer.concat([out.subarray(0, to), out.subarray(at, end), out.subarray(to)]);
            break;
          }
          default: {
            // drop a range
            const end = Math.min(out.length, at + 1 + randInt(rand, 16));
            out = Buffer.concat([out.subarray(0, at), out.subarray(end)]);
          }
        }
      }
      return out;
    };

    const started = performance.now();
    const tally = { frames: 0, refused: 0, clean: 0, mutated: 0, random: 0 };
    for (let round = 0; round < 2000; round++) {
      let input: Buffer;
      const flavour = round % 4;
      if (flavour === 0) {
        input = randomBytes(rand, randInt(rand, 2049));
        tally.random++;
      } else if (flavour === 1) {
        // Random bytes behind a plausible header, to get past the header checks more often.
        input = randomBytes(rand, LINK_FRAME_HEADER_BYTES + randInt(rand, 2040));
        const kind = 1 + randInt(rand, 10);
        input[0] = kind;
        input.writeUInt32BE(kind <= 3 || kind >= 9 ? 0 : 1 + randInt(rand, 4), 1);
        input.writeUInt32BE(randInt(rand, input.length), 5);
        tally.random++;
      } else {
        input = validStream();
        if (flavour === 3 || rand() < 0.5) {
          input = mutate(input);
          tally.mutated++;
        } else tally.clean++;
      }

      const d = new LinkFrameDecoder({ maxJsonBytes });
      const context = `seed ${SEED}, round ${round}, input ${input.toString('hex').slice(0, 200)}`;
      let out: LinkFrame[] = [];
      try {
        out = decodeAll(d, split(input, rand, 1 + randInt(rand, 300)));
        expect(d.pendingBytes, context).toBeLessThanOrEqual(input.length);
      } catch (err) {
        if (!(err instanceof LinkFrameError)) throw new Error(`${context}: not a LinkFrameError: ${String(err)}`);
        expect(['bad_frame', 'frame_too_large'], context).toContain(err.code);
        expect(() => d.push(Buffer.alloc(1)), context).toThrow(LinkFrameError);
        tally.refused++;
        continue;
      }
      for (const frame of out) {
        // Every decoded frame is a valid frame: it re-encodes, and decodes back to itself.
        const again = new LinkFrameDecoder({ maxJsonBytes }).push(encodeLinkFrame(frame));
        expect(again, context).toEqual([frame]);
        tally.frames++;
      }
    }
    const elapsed = performance.now() - started;
    console.log(`link-frame fuzz (seed ${SEED}): ${JSON.stringify(tally)} in ${elapsed.toFixed(0)} ms`);
    expect(tally.refused).toBeGreaterThan(400);
    expect(tally.frames).toBeGreaterThan(1000);
  });
});
