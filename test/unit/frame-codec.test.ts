import { describe, expect, it } from 'vitest';
import { FrameDecoder, FrameError, encodeFrame } from '../../src-main/base/frame-codec.js';

function lengthPrefixed(body: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

describe('frame codec', () => {
  it('decodes frames split at every possible boundary', () => {
    const messages = [{ t: 'hello', protocol: 1 }, { a: 'ünïcødé ✓', n: [1, 2, 3] }, 'x', 42, null];
    const stream = Buffer.concat(messages.map((m) => encodeFrame(m)));
    for (let cut = 0; cut <= stream.length; cut++) {
      const d = new FrameDecoder(1024);
      const out = [...d.push(stream.subarray(0, cut)), ...d.push(stream.subarray(cut))];
      expect(out).toEqual(messages);
      expect(d.pendingBytes).toBe(0);
    }
  });

  it('decodes byte by byte', () => {
    const stream = Buffer.concat([encodeFrame({ x: 1 }), encodeFrame({ y: 'two' })]);
    const d = new FrameDecoder(1024);
    const out: unknown[] = [];
    for (const byte of stream) out.push(...d.push(Buffer.from([byte])));
    expect(out).toEqual([{ x: 1 }, { y: 'two' }]);
  });

  it('refuses an oversized frame from its header alone, before buffering the body', () => {
    const d = new FrameDecoder(100);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(0xffffffff, 0);
    let error: unknown;
    try {
      d.push(head);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FrameError);
    expect((error as FrameError).code).toBe('frame_too_large');
    expect((error as FrameError).message).toMatch(/exceeds the limit of 100/);
    expect(() => d.push(Buffer.from('more'))).toThrow(FrameError);
  });

  it('refuses a frame that is not JSON', () => {
    const d = new FrameDecoder(100);
    expect(() => d.push(lengthPrefixed(Buffer.from('{not json')))).toThrow(/not valid JSON/);
  });

  it('survives random input with only FrameErrors (fuzz)', () => {
    let seed = 12345;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    let decoded = 0;
    let refused = 0;
    for (let round = 0; round < 2000; round++) {
      const d = new FrameDecoder(4096);
      const len = Math.floor(rand() * 64);
      // Half the rounds: a plausible length header followed by random bytes.
      const bytes = Buffer.from(Array.from({ length: len }, () => Math.floor(rand() * 256)));
      if (round % 2 === 0 && len >= 4) bytes.writeUInt32BE(Math.floor(rand() * (len - 3)), 0);
      try {
        decoded += d.push(bytes).length;
      } catch (e) {
        expect(e).toBeInstanceOf(FrameError);
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(100);
    expect(decoded + refused).toBeGreaterThan(0);
  });
});
