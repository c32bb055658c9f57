/**
 * A program that asks its terminal something (where the cursor is, what terminal it is) gets
 * exactly one answer: from the agent's screen mirror when no viewer is attached (it would hang
 * forever otherwise), and still exactly one when viewers are attached whose terminals answer
 * too. Real agent, real ptys (the session's program is the test program `query`); the viewers
 * are API connections that answer the question as a terminal does when they see it.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src-main/api/client.js';
import { startDaemon, waitFor, type DaemonHandle } from '../helpers/agent-process.js';
import { fillTestPrograms } from '../helpers/test-programs.js';

describe('terminal queries', () => {
  let programs: string;
  let agent: DaemonHandle;
  let client: ApiClient;
  beforeAll(async () => {
    programs = mkdtempSync('/tmp/vos-programs-');
    chmodSync(programs, 0o755);
    fillTestPrograms(programs);
    agent = await startDaemon({ env: { VOS_MDNS: '0', VOS_LISTEN: 'none' } });
    client = await agent.connect();
  });
  afterAll(async () => {
    await agent?.stop();
    rmSync(programs, { recursive: true, force: true });
  });

  /** A session that asks `query` (ending in `final`) once it reads a line. */
  async function asker(query: string, final: string): Promise<string> {
    const s = await client.request('session.create', {
      command: 'sh',
      args: ['-c', 'echo ready; read go; exec "$0" "$@"', join(programs, 'query'), query, final],
      cwd: agent.home,
      cols: 80,
      rows: 24,
    });
    await client.request('session.wait', { id: s.id, pattern: '^ready$', timeoutMs: 10_000 });
    return s.id;
  }

  /** The program's first answer and what came after it, once it got one. */
  async function answers(id: string): Promise<{ reply: string; extra: string }> {
    const screen = await client.request('session.wait', { id, pattern: '^reply=', timeoutMs: 10_000 });
    const reply = screen.lines.find((l) => l.startsWith('reply='))!.slice(6);
    await client.request('session.input', { id, data: 'X' }); // ends the program's second read
    const after = await client.request('session.wait', { id, pattern: '^extra=', timeoutMs: 10_000 });
    return { reply, extra: after.lines.find((l) => l.startsWith('extra='))!.slice(6) };
  }

  // "ready", the echoed Enter of `read`, then "asking": the question comes on row 4, column 1.
  it.each([
    ['the cursor position', '\\e[6n', 'R', '^[[4;1R'],
    ['the DEC cursor position', '\\e[?6n', 'R', '^[[?4;1R'],
    ['the status', '\\e[5n', 'n', '^[[0n'],
    ['the primary device attributes', '\\e[c', 'c', '^[[?1;2c'],
    ['the secondary device attributes', '\\e[>c', 'c', '^[[>0;276;0c'],
    ['a mode (DECRQM, bracketed paste)', '\\e[?2004$p', 'y', '^[[?2004;2$y'],
  ])('no viewer: the agent answers %s from its mirror', async (_what, query, final, expected) => {
    const id = await asker(query, final);
    await client.request('session.input', { id, data: '\r' });
    expect(await answers(id)).toEqual({ reply: expected, extra: '' });
  });

  /** A viewer whose terminal answers `answer` to each `question` it sees in the output. */
  async function viewer(id: string, question: string, answer: string): Promise<{ answered: () => number; close: () => void }> {
    const c = await agent.connect();
    let seen = '';
    let answered = 0;
    c.onEvent((e) => {
      if (e.event !== 'session.output' || e.id !== id) return;
      seen += e.data;
      while (seen.includes(question)) {
        seen = seen.slice(seen.indexOf(question) + question.length);
        void c.request('session.input', { id, data: answer }).then(() => answered++);
      }
    });
    await c.request('session.attach', { id });
    return { answered: () => answered, close: () => c.close() };
  }

  it.each([1, 2])('%i viewer(s) answering too: the program gets exactly one answer, the agent\'s', async (n) => {
    const id = await asker('\\e[6n', 'R');
    const viewers = await Promise.all(Array.from({ length: n }, (_, i) => viewer(id, '\x1b[6n', `\x1b[${9 + i};9R`)));
    try {
      await client.request('session.input', { id, data: '\r' });
      await waitFor('each viewer to answer', () => viewers.every((v) => v.answered() === 1), 10_000);
      expect(await answers(id)).toEqual({ reply: '^[[4;1R', extra: '' });
    } finally {
      for (const v of viewers) v.close();
    }
  });

  it('a viewer\'s keys around its answer pass, and Ctrl-F3 from a viewer that owes nothing is a key', async () => {
    const id = await asker('\\e[c', 'c');
    const v = await viewer(id, '\x1b[c', 'a\x1b[?62;22cb');
    try {
      await client.request('session.input', { id, data: '\r' });
      await waitFor('the viewer to answer', () => v.answered() === 1, 10_000);
      const screen = await client.request('session.wait', { id, pattern: '^reply=', timeoutMs: 10_000 });
      const reply = screen.lines.find((l) => l.startsWith('reply='))!.slice(6);
      // Ctrl-F3 from a viewer that owes nothing: it is a key.
      const keys = await agent.connect();
      try {
        await keys.request('session.attach', { id });
        await keys.request('session.input', { id, data: '\x1b[1;5R' });
      } finally {
        keys.close();
      }
      await client.request('session.input', { id, data: 'X' });
      const after = await client.request('session.wait', { id, pattern: '^extra=', timeoutMs: 10_000 });
      const extra = after.lines.find((l) => l.startsWith('extra='))!.slice(6);
      // The agent's answer and the viewer's keys race: the answer once, the keys in order.
      const all = reply + extra;
      expect(all.split('^[[?1;2c').length).toBe(2);
      expect(all.replace('^[[?1;2c', '')).toBe('ab^[[1;5R');
    } finally {
      v.close();
    }
  });
});
