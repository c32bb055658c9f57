/**
 * After a restore a program sees what it sees after a real terminal resize: the SIGWINCH
 * arrives while it waits in its blocking call, so the call is interrupted (EINTR without
 * SA_RESTART, continued after the handler with it) and the handler runs; full-screen programs
 * redraw without a key, and the first key sequence typed afterwards arrives whole, also when sent
 * the moment the restore is done (the resize has been taken by then).
 * ZDTM style: test/runtime/programs/winch.c, then vim and less. As root the set runs as root and
 * as nobody.
 */
import { chownSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src-main/api/client.js';
import { startDaemon, vos, waitFor, type DaemonHandle } from '../helpers/agent-process.js';
import { PROGRAMS_SRC, buildTestPrograms, runAsUsers } from '../helpers/test-programs.js';

let programs: string;

beforeAll(() => {
  programs = buildTestPrograms('/tmp/vos-redraw-');
});

afterAll(() => {
  rmSync(programs, { recursive: true, force: true });
});

const runAs = runAsUsers('redraw tests');

describe.each(runAs)('a restored program is woken as by a resize (as $who)', ({ user }) => {
  let agent: DaemonHandle;
  let client: ApiClient;
  const env = (): Record<string, string> => ({ ...(process.env as Record<string, string>), HOME: agent.home });
  const own = (path: string): string => {
    if (user) chownSync(path, user.uid, user.gid);
    return path;
  };

  beforeAll(async () => {
    agent = await startDaemon(user ? { asUser: user } : {});
    client = await agent.connect();
  });

  afterAll(async () => {
    await agent?.stop();
  });

  async function run(command: string, args: string[], cwd?: string): Promise<string> {
    const s = await client.request('session.create', { command, args, env: env(), cwd: cwd ?? agent.home, cols: 100, rows: 30 });
    return s.id;
  }
  const send = (id: string, data: string): Promise<unknown> => client.request('session.input', { id, data });
  const waitText = (id: string, pattern: string, timeoutMs = 10_000): Promise<{ lines: string[] }> =>
    client.request('session.wait', { id, pattern, timeoutMs });
  const screen = async (id: string): Promise<string> => (await client.request('session.screen', { id })).lines.join('\n');
  const count = async (id: string, re: RegExp): Promise<number> => [...(await screen(id)).matchAll(re)].length;

  async function cycle(id: string, name: string): Promise<string> {
    const file = join(agent.home, `${name}-${id}.vosimg`);
    const cp = await vos(agent.home, ['checkpoint', id, '--out', file, '--json']);
    expect(cp.stderr).toBe('');
    expect(cp.code).toBe(0);
    expect(statSync(file).size).toBeGreaterThan(0);
    await client.request('session.kill', { id, signal: 'KILL' });
    await waitFor('the original to end', async () => (await client.request('session.list', {})).find((s) => s.id === id)?.state === 'exited');
    const restored = await vos(agent.home, ['restore', file, '--json']);
    expect(restored.stderr).toBe('');
    expect(restored.code).toBe(0);
    return (JSON.parse(restored.stdout) as { id: string }).id;
  }

  it('a read() on the terminal without SA_RESTART returns EINTR and the handler runs, with no key', async () => {
    const id = await run(join(programs, 'winch'), ['intr']);
    await waitText(id, '^ready 1 ');
    const rid = await cycle(id, 'winch-intr');
    // No input at all: the restore's SIGWINCH alone wakes it.
    await waitText(rid, '^EINTR after 1 winch$');
    await waitText(rid, '^ready 2 ');
    expect(await count(rid, /^winch$/gm)).toBe(1);
    expect(await screen(rid)).not.toMatch(/^read /m);
    await send(rid, '\x1b[B');
    await waitText(rid, '^read 3: 1b 5b 42$');
    expect(await screen(rid)).toMatch(/^ready 1 .*\nwinch\nEINTR after 1 winch\nready 2 .*\nread 3: 1b 5b 42$/m);
    await send(rid, 'q');
  });

  it('with SA_RESTART the handler runs and the read goes on: a key sequence afterwards is read whole', async () => {
    const id = await run(join(programs, 'winch'), ['restart']);
    await waitText(id, '^ready 1 ');
    const rid = await cycle(id, 'winch-restart');
    await waitText(rid, '^winch$');
    // The same read goes on: no EINTR, no second "ready" until the key arrives.
    const before = await screen(rid);
    expect(before).not.toMatch(/EINTR/);
    expect(before).not.toMatch(/^ready 2 /m);
    await send(rid, '\x1b[B');
    await waitText(rid, '^ready 2 ');
    const s = await screen(rid);
    expect(s).toMatch(/^ready 1 .*\nwinch\nread 3: 1b 5b 42\nready 2 /m);
    expect(s).not.toMatch(/EINTR/);
    await send(rid, 'q');
  });

  it('a key sent the moment the restore is done reaches a program that drops a key a resize interrupts (as less does)', async () => {
    const id = await run(join(programs, 'winch'), ['cancel']);
    await waitText(id, '^ready 1 ');
    const rid = await cycle(id, 'winch-cancel');
    // At once: the restore's SIGWINCH has been taken before the restore said it was done. (It
    // used to be sent just after; on a busy machine it then came in the 30 ms the program handles
    // the key, which this quiet run does not reproduce: the trial of programs did, 2 of 6 runs.)
    await send(rid, 'x');
    await waitText(rid, '^(read|dropped) 1: 78$');
    const s = await screen(rid);
    expect(s).toMatch(/^read 1: 78$/m);
    expect(s).toMatch(/^ready 1 .*\nwinch\nEINTR after 1 winch\nready 2 .*\nread 1: 78$/m);
    await send(rid, 'q');
  });

  /**
   * Writes `text` onto the session's terminal behind the program's back (the pty's slave, as
   * another program would): the screen shows it, the program does not know. Only a redraw of its
   * own removes it.
   */
  async function scribble(id: string, text: string): Promise<void> {
    const pid = (await client.request('session.list', {})).find((s) => s.id === id)!.pid;
    writeFileSync(`/proc/${pid}/fd/1`, text);
    await waitText(id, text.replace(/\x1b\[[0-9;]*H/g, ''));
  }

  it('vim redraws after a restore without a key, and an arrow key right after it moves the cursor (insert mode)', async () => {
    const dir = own(mkdtempSync(join(agent.home, 'vim-')));
    const file = join(dir, 'lines.txt');
    writeFileSync(file, 'first line\nsecond line\nthird line\n');
    own(file);
    const id = await run('vim', ['-Nu', 'NONE', '-n', 'lines.txt'], dir);
    await waitText(id, '^third line$');
    await send(id, 'i'); // insert mode, at the start of the first line
    await waitText(id, '-- INSERT --');
    await scribble(id, '\x1b[10;1HSCRIBBLE');
    const rid = await cycle(id, 'vim');
    // Restored, the screen still has the scribble; vim's own redraw (the resize) takes it away.
    await waitFor('vim to redraw', async () => !/SCRIBBLE/.test(await screen(rid)), 10_000);
    expect(await screen(rid)).toMatch(/^second line$/m);
    await send(rid, '\x1b[B'); // Down, right after the restore: onto "second line"
    await send(rid, 'Z');
    await waitText(rid, '^Zsecond line$');
    await send(rid, '\x1b');
    await waitFor('vim to leave insert mode', async () => !/-- INSERT --/.test(await screen(rid)));
    await send(rid, ':wq\r');
    await waitFor('vim to write the file', () => readFileSync(file, 'utf8') === 'first line\nZsecond line\nthird line\n');
  });

  it('a curses program gets its resize at restore without a key, and the first arrow key after it whole', async () => {
    // ncurses reads a key sequence byte by byte. With the signal delivered before the re-issued
    // read, its handler only set a flag: no KEY_RESIZE until a key came, and then in the middle
    // of the key's sequence (ESC [ B came out as 27, 410, 91, 66: the editor inserted "[B").
    const id = await run('python3', [join(PROGRAMS_SRC, 'curses-keys.py')]);
    await waitText(id, '^keys ready$');
    const rid = await cycle(id, 'curses');
    await waitText(rid, '^key 410$'); // KEY_RESIZE, with no key typed
    await send(rid, '\x1bOB'); // Down, as a terminal in keypad mode sends it
    await waitText(rid, '^key 258$'); // KEY_DOWN
    const keys = (await screen(rid)).split('\n').filter((l) => l.startsWith('key '));
    expect(keys).toEqual(['key 410', 'key 258']);
    await send(rid, 'q');
  });

  it('less redraws after a restore without a key', async () => {
    const file = join(agent.home, 'many.txt');
    writeFileSync(file, Array.from({ length: 200 }, (_, i) => `row ${i + 1}`).join('\n') + '\n');
    own(file);
    const id = await run('less', [file]);
    await waitText(id, '^row 29$');
    await send(id, '50g');
    await waitText(id, '^row 50$');
    await scribble(id, '\x1b[5;1HSCRIBBLE');
    const rid = await cycle(id, 'less');
    await waitFor('less to redraw', async () => !/SCRIBBLE/.test(await screen(rid)), 10_000);
    expect(await screen(rid)).toMatch(/^row 50$/m);
    await send(rid, 'j');
    await waitText(rid, '^row 7[89]$');
    await send(rid, 'q');
  });
});
