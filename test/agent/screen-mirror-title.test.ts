/**
 * The program's title (OSC 0/2) is kept by the screen mirror as a terminal keeps it, and travels
 * in every snapshot: a viewer that attaches later, and a session restored or moved (its image's
 * screen is a snapshot), get it too.
 */
import xtermHeadless from '@xterm/headless';
import { afterEach, describe, expect, it } from 'vitest';
import { ScreenMirror } from '../../src-main/agent/session/screen-mirror.js';

const mirrors: ScreenMirror[] = [];
afterEach(() => {
  for (const m of mirrors.splice(0)) m.dispose();
});

async function written(data: string): Promise<ScreenMirror> {
  const m = new ScreenMirror(80, 24);
  mirrors.push(m);
  await new Promise<void>((r) => m.write(data, r));
  return m;
}

const snapshot = (m: ScreenMirror): Promise<string> => m.atCurrentPoint(() => m.serialize());

/** The title a real terminal shows after drawing `snapshot` ('' if none was set). */
async function titleShown(snap: string): Promise<string> {
  const t = new xtermHeadless.Terminal({ cols: 80, rows: 24, allowProposedApi: true });
  let title = '';
  t.onTitleChange((x) => (title = x));
  await new Promise<void>((r) => t.write(snap, r));
  t.dispose();
  return title;
}

describe('the screen mirror keeps the program title', () => {
  it('gives it to a viewer that comes later, with the screen', async () => {
    const m = await written('\x1b]0;first\x07hello\r\n\x1b]2;editing notes.txt\x07world');
    const snap = await snapshot(m);
    expect(await titleShown(snap)).toBe('editing notes.txt');
    expect(snap).toContain('world');
  });

  it('keeps it through a restore (a mirror primed with a snapshot) and back out', async () => {
    const m = await written('\x1b]2;kept across\x07text');
    const restored = await written(await snapshot(m));
    expect(await titleShown(await snapshot(restored))).toBe('kept across');
  });

  it('has none when the program set none, or set it empty again', async () => {
    expect(await snapshot(await written('plain'))).not.toContain('\x1b]');
    expect(await snapshot(await written('\x1b]2;x\x07\x1b]2;\x07plain'))).not.toContain('\x1b]');
  });

  it('writes no control character of the title back out, and no endless title', async () => {
    const m = await written(`\x1b]2;a\x7fb${'t'.repeat(5000)}\x07`);
    const snap = await snapshot(m);
    const title = /^\x1b\]2;([^\x07]*)\x07/.exec(snap)![1]!;
    expect(title).toMatch(/^[^\x00-\x1f\x7f-\x9f]+$/);
    expect(title.length).toBeLessThanOrEqual(1024);
  });
});
