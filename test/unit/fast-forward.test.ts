/**
 * The mirror's fast-forward (fast-forward.ts) skips parsing output a flood pushes out of the
 * scrollback. It must never change what the mirror shows: every case here is written into a
 * mirror (which fast-forwards) and into a plain xterm fed the same output (which does not), and
 * their screens, scrollbacks and cursors must be identical.
 */
import xtermHeadless from '@xterm/headless';
import serializeModule from '@xterm/addon-serialize';
import { describe, expect, it } from 'vitest';
import { FAST_FORWARD_MIN_CHARS, fastForward } from '../../src-main/agent/session/fast-forward.js';
import { MIRROR_SCROLLBACK_LINES, ScreenMirror, scrollbackLinesFor } from '../../src-main/agent/session/screen-mirror.js';

const { Terminal } = xtermHeadless;
const { SerializeAddon } = serializeModule;

/** Deterministic pseudo-random numbers (a test that fails can be run again alike). */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

function line(rand: () => number, width: number): string {
  const len = Math.floor(rand() * width * 1.5); // some wrap
  let s = '';
  for (let i = 0; i < len; i++) {
    const r = rand();
    s += r < 0.02 ? '\t' : r < 0.04 ? '界' : r < 0.05 ? 'é' : String.fromCharCode(0x21 + Math.floor(rand() * 90));
  }
  return s;
}

/** What the reference terminal shows: serialized screen and scrollback, and the cursor. */
async function reference(chunks: string[], cols: number, rows: number, resizeTo?: { cols: number; rows: number; after: number }): Promise<string> {
  const term = new Terminal({ cols, rows, scrollback: scrollbackLinesFor(cols), allowProposedApi: true, logLevel: 'off' });
  const ser = new SerializeAddon();
  term.loadAddon(ser);
  for (const [i, c] of chunks.entries()) {
    await new Promise<void>((r) => term.write(c, r));
    if (resizeTo && i === resizeTo.after) {
      const sb = scrollbackLinesFor(resizeTo.cols);
      if (sb < term.options.scrollback!) term.options.scrollback = sb;
      term.resize(resizeTo.cols, resizeTo.rows);
      term.options.scrollback = sb;
    }
  }
  const b = term.buffer.active;
  const out = `${ser.serialize({ scrollback: MIRROR_SCROLLBACK_LINES })}|${b.cursorX},${b.cursorY},${b.length}`;
  term.dispose();
  return out;
}

async function mirrored(chunks: string[], cols: number, rows: number, resizeTo?: { cols: number; rows: number; after: number }): Promise<{ shown: string; skipped: number }> {
  const m = new ScreenMirror(cols, rows);
  try {
    // All written at once: the mirror gets them as one batch, as in a flood.
    for (const [i, c] of chunks.entries()) {
      m.write(c);
      if (resizeTo && i === resizeTo.after) m.resize(resizeTo.cols, resizeTo.rows);
    }
    const shown = await m.atCurrentPoint(() => {
      const t = m.text('x');
      return `${m.serialize()}|${t.cursor.x},${t.cursor.y}`;
    });
    return { shown, skipped: m.skippedChars };
  } finally {
    m.dispose();
  }
}

/** The reference's output less the buffer length (the mirror does not expose it). */
const shownPart = (s: string): string => s.slice(0, s.lastIndexOf(','));

describe('fast-forward', () => {
  it('finds nothing in short output, in output without enough lines, or before a CR LF', () => {
    expect(fastForward('a\r\n'.repeat(100), 24, 50)).toBeNull();
    const long = 'x'.repeat(FAST_FORWARD_MIN_CHARS) + '\r\n' + 'y\r\n'.repeat(10);
    expect(fastForward(long, 24, 50)).toBeNull();
    expect(fastForward('z\n'.repeat(FAST_FORWARD_MIN_CHARS), 24, 50)).toBeNull(); // no CR: the column is unknown
  });

  it('keeps the last lines and a prefix equivalent for the cursor', () => {
    const data = Array.from({ length: 40_000 }, (_, i) => `line ${i}`).join('\r\n') + '\r\n';
    const ff = fastForward(data, 24, 1000)!;
    expect(ff).not.toBeNull();
    expect(ff.data.startsWith('\r' + '\n'.repeat(24) + 'line 3900')).toBe(true);
    expect(ff.data.length + ff.skipped).toBe(data.length);
    expect(ff.data.endsWith('line 39999\r\n')).toBe(true);
  });

  it('stops the plain run at the first escape sequence or control character', () => {
    const tail = 'b\r\n'.repeat(30) + '\x1b[31mred\r\n' + 'c\r\n'.repeat(5000);
    const data = 'a\r\n'.repeat(FAST_FORWARD_MIN_CHARS) + tail;
    const ff = fastForward(data, 24, 40)!;
    // The kept part starts before the last 40 line feeds ahead of the escape, not after it.
    expect(ff.data.includes('\x1b[31mred')).toBe(true);
    expect(ff.data.indexOf('\x1b[31m')).toBeLessThan(200);
  });

  const cases: [string, (rand: () => number, cols: number) => string[]][] = [
    ['plain lines', (rand, cols) => [Array.from({ length: 30_000 }, () => line(rand, cols)).join('\r\n')]],
    [
      'colours and cursor moves before and inside the flood',
      (rand, cols) => [
        '\x1b[1;33mbold\x1b[0m\r\n\x1b[5;10Hplaced\x1b[44m',
        Array.from({ length: 25_000 }, () => line(rand, cols)).join('\r\n'),
        '\r\n\x1b[32mgreen\x1b[0m tail\r\n',
        Array.from({ length: 12_000 }, () => line(rand, cols)).join('\r\n'),
      ],
    ],
    [
      'a scroll region set before the flood',
      (rand, cols) => ['\x1b[3;10r\x1b[5;1H', Array.from({ length: 25_000 }, () => line(rand, cols)).join('\r\n'), '\x1b[r'],
    ],
    [
      // Below the region, line feeds do not scroll: the text piles up on the last row.
      'the cursor below a scroll region',
      (rand, cols) => ['\x1b[2;4r\x1b[8;1H', Array.from({ length: 25_000 }, () => line(rand, cols)).join('\r\n')],
    ],
    ['the alternate screen', (rand, cols) => ['\x1b[?1049h', Array.from({ length: 25_000 }, () => line(rand, cols)).join('\r\n'), '\r\nin alt']],
    [
      'an escape sequence split across writes',
      (rand, cols) => ['start\r\n\x1b[3', '1m' + Array.from({ length: 25_000 }, () => line(rand, cols)).join('\r\n'), '\x1b[0m end'],
    ],
    [
      'lines ending in LF alone',
      (rand, cols) => [Array.from({ length: 25_000 }, () => line(rand, cols)).join(rand() < 0.5 ? '\n' : '\r\n')],
    ],
  ];

  for (const [name, make] of cases) {
    it(`shows exactly what a terminal parsing everything shows: ${name}`, async () => {
      for (const [cols, rows, seed] of [
        [80, 24, 1],
        [37, 9, 2],
        [120, 50, 3],
      ] as const) {
        const chunks = make(rng(seed), cols);
        const want = await reference(chunks, cols, rows);
        const got = await mirrored(chunks, cols, rows);
        expect(got.shown, `${cols}x${rows}`).toBe(shownPart(want));
      }
    });
  }

  it('fast-forwards a flood as it arrives, and a read in the middle sees exactly the output before it', async () => {
    const rand = rng(11);
    const pieces: string[] = [];
    for (let i = 0; i < 12; i++) {
      const block = Array.from({ length: 6_000 }, () => line(rand, 80)).join('\r\n') + '\r\n';
      for (let at = 0; at < block.length; at += 16_384) pieces.push(block.slice(at, at + 16_384));
      if (i === 5) pieces.push('\x1b[35mmagenta\x1b[0m\r\n');
    }
    const m = new ScreenMirror(80, 24);
    try {
      let middle: Promise<string> | null = null;
      const half = Math.floor(pieces.length / 2);
      for (const [i, piece] of pieces.entries()) {
        m.write(piece);
        if (i === half) middle = m.atCurrentPoint(() => m.serialize());
        // Output arrives over time, as from a program: the mirror is idle now and then.
        if (i % 8 === 0) await new Promise((r) => setImmediate(r));
      }
      const end = await m.atCurrentPoint(() => m.serialize());
      expect(m.skippedChars).toBeGreaterThan(pieces.join('').length / 2);
      expect(m.pendingChars).toBe(0);
      const screenOf = (ref: string): string => ref.slice(0, ref.lastIndexOf('|'));
      expect(await middle).toBe(screenOf(await reference(pieces.slice(0, half + 1), 80, 24)));
      expect(end).toBe(screenOf(await reference(pieces, 80, 24)));
    } finally {
      m.dispose();
    }
  });

  it('skips most of a plain flood, and keeps the same screen across a resize in it', async () => {
    const rand = rng(7);
    const chunks = [Array.from({ length: 40_000 }, () => line(rand, 80)).join('\r\n'), '\r\n' + Array.from({ length: 15_000 }, () => line(rand, 80)).join('\r\n')];
    const plain = await mirrored(chunks, 80, 24);
    expect(plain.skipped).toBeGreaterThan(chunks.join('').length / 3);
    expect(plain.shown).toBe(shownPart(await reference(chunks, 80, 24)));
    const resize = { cols: 60, rows: 30, after: 0 };
    expect((await mirrored(chunks, 80, 24, resize)).shown).toBe(shownPart(await reference(chunks, 80, 24, resize)));
  });
});
