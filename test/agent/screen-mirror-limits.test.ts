/**
 * The screen mirror's memory is bounded in cells (security review, issue 15): a wide terminal
 * keeps fewer lines of scrollback, so a resize cannot make one session cost hundreds of MiB.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MIRROR_SCROLLBACK_CELLS, MIRROR_SCROLLBACK_LINES, ScreenMirror } from '../../src-main/agent/session/screen-mirror.js';

const mirrors: ScreenMirror[] = [];
afterEach(() => {
  for (const m of mirrors.splice(0)) m.dispose();
});

function mirror(cols: number, rows: number): ScreenMirror {
  const m = new ScreenMirror(cols, rows);
  mirrors.push(m);
  return m;
}

describe('ScreenMirror limits', () => {
  it('keeps the full scrollback at usual widths and fewer lines when wide', () => {
    expect(mirror(80, 24).scrollbackLines).toBe(MIRROR_SCROLLBACK_LINES);
    expect(mirror(100, 50).scrollbackLines).toBe(MIRROR_SCROLLBACK_LINES);
    expect(mirror(200, 50).scrollbackLines).toBe(MIRROR_SCROLLBACK_CELLS / 200);
    const wide = mirror(4000, 100);
    expect(wide.scrollbackLines * wide.cols).toBeLessThanOrEqual(MIRROR_SCROLLBACK_CELLS);
  });

  it('follows the width on resize, and keeps what fits', async () => {
    const m = mirror(80, 24);
    const lines = Array.from({ length: 3000 }, (_, i) => `line ${i}`).join('\r\n');
    await new Promise<void>((r) => m.write(lines, r));
    m.resize(2000, 100);
    expect(m.scrollbackLines).toBe(MIRROR_SCROLLBACK_CELLS / 2000);
    await new Promise<void>((r) => m.write('\r\nafter', r));
    const text = await m.atCurrentPoint(() => m.serialize());
    expect(text).toContain('line 2999');
    expect(text).not.toMatch(/line 2000\b/);
    m.resize(100, 30);
    expect(m.scrollbackLines).toBe(MIRROR_SCROLLBACK_LINES);
  });
});
