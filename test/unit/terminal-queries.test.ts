/**
 * The pieces behind "exactly one answer to a terminal query" (terminal-queries.ts): questions
 * found in output split anywhere, each viewer's owed answers dropped once and only within the
 * window, and the mirror's answers (none for a saved screen it is given).
 */
import { describe, expect, it } from 'vitest';
import { ANSWER_WINDOW_MS, answerKind, OwedAnswers, QueryScanner } from '../../src-main/agent/session/terminal-queries.js';
import { ScreenMirror } from '../../src-main/agent/session/screen-mirror.js';

describe('QueryScanner', () => {
  it('finds each question once, however the output is split', () => {
    const out = 'hi\x1b[6n\x1b[1mbold\x1b[c\x1b[>c\x1b[5n\x1b[?6n\x1b[?2004$p\x1bP$qm\x1b\\\x1b[0c\x1b[>0c end';
    const want = ['cursor', 'da1', 'da2', 'status', 'cursor-dec', 'mode', 'setting', 'da1', 'da2'];
    expect(new QueryScanner().scan(out)).toEqual(want);
    for (let cut = 1; cut < out.length; cut++) {
      const s = new QueryScanner();
      expect([...s.scan(out.slice(0, cut)), ...s.scan(out.slice(cut))]).toEqual(want);
    }
    // Byte by byte too.
    const s = new QueryScanner();
    expect([...out].flatMap((ch) => s.scan(ch))).toEqual(want);
  });

  it('takes what only looks like a question for what it is', () => {
    expect(new QueryScanner().scan('\x1b[16n \x1b[2c \x1b[6 n 6n [c \x1b[1;5R')).toEqual([]);
  });
});

describe('OwedAnswers', () => {
  it('drops each owed answer once, keeps keys around it, and lets the rest through', () => {
    const o = new OwedAnswers();
    o.owe('cursor', 0);
    o.owe('da1', 0);
    expect(o.filter('a\x1b[12;40Rb\x1b[?62;22cc\x1b[3;3R', 10)).toBe('abc\x1b[3;3R');
    expect(o.pending).toBe(0);
    expect(o.filter('\x1b[?1;2c', 20)).toBe('\x1b[?1;2c');
  });

  it('forgets what a viewer owed after the window: then Ctrl-F3 (ESC[1;5R) is a key', () => {
    const o = new OwedAnswers();
    o.owe('cursor', 0);
    expect(o.filter('\x1b[1;5R', ANSWER_WINDOW_MS + 1)).toBe('\x1b[1;5R');
    // Within the window a report and the key look the same: the first one is taken as the report.
    o.owe('cursor', 0);
    expect(o.filter('\x1b[1;5R', 1)).toBe('');
  });

  it('knows the mirror\'s answers', () => {
    expect(answerKind('\x1b[3;1R')).toBe('cursor');
    expect(answerKind('\x1b[?1;2c')).toBe('da1');
    expect(answerKind('\x1bP1$r0m\x1b\\')).toBe('setting');
    expect(answerKind('\x1b[8;24;80t')).toBeNull();
    expect(answerKind('x\x1b[0n')).toBeNull();
  });
});

describe('the mirror as the terminal that answers', () => {
  const answersTo = async (m: ScreenMirror, data: string, quiet = false): Promise<string[]> => {
    const got: string[] = [];
    m.onAnswer = (d) => got.push(d);
    m.write(data, undefined, quiet);
    await m.atCurrentPoint(() => undefined);
    return got;
  };

  it('answers with the cursor where the question is, and not for a saved screen', async () => {
    const m = new ScreenMirror(80, 24);
    try {
      expect(await answersTo(m, 'ab\r\ncd\x1b[6n\x1b[c')).toEqual(['\x1b[2;3R', '\x1b[?1;2c']);
      expect(await answersTo(m, 'saved\x1b[6n', true)).toEqual([]);
      const got: string[] = [];
      m.onAnswer = (d) => got.push(d);
      // A quiet write between two loud ones: only theirs are answered.
      m.write('\x1b[5n');
      m.write('\x1b[6n', undefined, true);
      m.write('\x1b[5n');
      await m.atCurrentPoint(() => undefined);
      expect(got).toEqual(['\x1b[0n', '\x1b[0n']);
    } finally {
      m.dispose();
    }
  });
});
