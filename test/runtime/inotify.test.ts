/**
 * inotify across checkpoint and restore (ZDTM-style, issue 11 item 3): the watches come back at
 * the numbers the program knows, by path, with their masks, behind the same epoll; a change made
 * while the program was not running reaches it as a real event; `tail -f` shows the lines
 * appended while it was down. As root the set runs twice: as root and as an ordinary user.
 */
import { appendFileSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src-main/api/client.js';
import { VosError } from '../../src-main/api/errors.js';
import { RECORD } from '../../src-main/agent/runtime/image-records.js';
import { joinImage, splitImage } from '../helpers/image-edit.js';
import { startDaemon, vos, waitFor, type DaemonHandle } from '../helpers/agent-process.js';
import { buildTestPrograms, runAsUsers } from '../helpers/test-programs.js';

let programs: string;

beforeAll(() => {
  programs = buildTestPrograms();
});

afterAll(() => {
  rmSync(programs, { recursive: true, force: true });
});

const runAs = runAsUsers('inotify tests');

describe.each(runAs)('inotify across checkpoint and restore (as $who)', ({ user }) => {
  let agent: DaemonHandle;
  let client: ApiClient;
  let work: string;
  const env = (): Record<string, string> => ({ ...(process.env as Record<string, string>), HOME: agent.home });
  const own = (path: string): string => {
    if (user) chownSync(path, user.uid, user.gid);
    return path;
  };

  beforeAll(async () => {
    agent = await startDaemon(user ? { asUser: user } : {});
    client = await agent.connect();
    work = agent.home;
  });

  afterAll(async () => {
    await agent?.stop();
  });

  async function run(command: string, args: string[]): Promise<string> {
    const s = await client.request('session.create', { command, args, env: env(), cwd: work, cols: 100, rows: 30 });
    return s.id;
  }
  const waitText = (id: string, pattern: string, timeoutMs = 10_000): Promise<{ lines: string[] }> =>
    client.request('session.wait', { id, pattern, timeoutMs });
  const lines = async (id: string): Promise<string[]> => (await client.request('session.screen', { id })).lines;
  const count = async (id: string, re: RegExp): Promise<number> => (await lines(id)).filter((l) => re.test(l)).length;

  /** vos checkpoint, kill, `meanwhile` (the program is not running), vos restore: the new id. */
  async function cycle(id: string, name: string, meanwhile: () => void): Promise<string> {
    const file = join(work, `${name}-${id}.vosimg`);
    const cp = await vos(agent.home, ['checkpoint', id, '--out', file, '--json']);
    expect(cp.stderr).toBe('');
    expect(cp.code).toBe(0);
    expect((JSON.parse(cp.stdout) as { bytes: number }).bytes).toBe(statSync(file).size);
    await client.request('session.kill', { id, signal: 'KILL' });
    await waitFor('the original to end', async () => (await client.request('session.list', {})).find((s) => s.id === id)?.state === 'exited');
    meanwhile();
    const restored = await vos(agent.home, ['restore', file, '--json']);
    expect(restored.stderr).toBe('');
    expect(restored.code).toBe(0);
    return (JSON.parse(restored.stdout) as { id: string }).id;
  }

  it('a watched file and directory keep their watch numbers; a change while down and after restore are events', async () => {
    const dir = join(work, 'watched');
    mkdirSync(dir, { recursive: true });
    own(dir);
    const file = join(dir, 'f.txt');
    writeFileSync(file, 'one\n');
    own(file);
    const id = await run(join(programs, 'inotify-watch'), [dir, file]);
    await waitText(id, '^ready$');
    expect(await lines(id)).toContain('watching dir=2 file=3');
    appendFileSync(file, 'two\n');
    await waitText(id, '^event wd=3 MODIFY name=$');
    const modifies = /^event wd=3 MODIFY name=$/;
    const before = await count(id, modifies);
    const rid = await cycle(id, 'inotify', () => appendFileSync(file, 'three, while down\n'));
    // The change made while the program was not running reaches it as a real event on watch 3.
    await waitFor('the event for the change made while down', async () => (await count(rid, modifies)) > before);
    // The watches work at their old numbers, through the same epoll.
    writeFileSync(join(dir, 'new.txt'), 'x');
    await waitText(rid, '^event wd=2 CREATE name=new.txt$');
    const now = await count(rid, modifies);
    appendFileSync(file, 'four\n');
    await waitFor('the event for a change after the restore', async () => (await count(rid, modifies)) > now);
    expect((await lines(rid)).filter((l) => /^event wd=(?![23] )/.test(l))).toEqual([]);
    await client.request('session.kill', { id: rid, signal: 'KILL' });
  });

  it('a changed file on which no event its watch takes can be raised is named in the restore note, not on the screen', async () => {
    const file = join(work, 'close-write.txt');
    writeFileSync(file, 'one\n');
    own(file);
    // A watch for IN_CLOSE_WRITE only: the restore cannot raise that on a file without writing it.
    const code = [
      'import ctypes, os',
      'libc = ctypes.CDLL(None, use_errno=True)',
      'fd = libc.inotify_init()',
      `wd = libc.inotify_add_watch(fd, ${JSON.stringify(file)}.encode(), 0x8)`,
      'print("watching", wd, flush=True)',
      'while True:',
      '    os.read(fd, 4096)',
      '    print("close-write event", flush=True)',
    ].join('\n');
    const id = await run('python3', ['-c', code]);
    await waitText(id, '^watching 1$');
    const cp = await vos(agent.home, ['checkpoint', id, '--out', join(work, `close-write-${id}.vosimg`), '--json']);
    expect(cp.code, cp.stderr).toBe(0);
    await client.request('session.kill', { id, signal: 'KILL' });
    await waitFor('the original to end', async () => (await client.request('session.list', {})).find((s) => s.id === id)?.state === 'exited');
    appendFileSync(file, 'two, while down\n');
    const restored = await vos(agent.home, ['restore', join(work, `close-write-${id}.vosimg`), '--json']);
    expect(restored.code, restored.stderr).toBe(0);
    const rid = (JSON.parse(restored.stdout) as { id: string }).id;
    const what = `${file} changed while the program was not running, and no event its inotify watch takes could be raised for it: the program was not told`;
    expect(restored.stderr).toBe(`vos: note: ${what}\n`);
    const info = (await client.request('session.list', {})).find((s) => s.id === rid)!;
    expect(info.restoreNote).toContain(what);
    // Nothing of it on the program's screen; the watch still works.
    appendFileSync(file, 'three\n');
    await waitText(rid, '^close-write event$');
    expect((await lines(rid)).filter((l) => /changed while|vos:/.test(l))).toEqual([]);
    await client.request('session.kill', { id: rid, signal: 'KILL' });
  });

  it.each(['-f', '-F'])('tail %s shows the lines appended while it was down, and those after', async (follow) => {
    const file = join(work, `followed${follow}.log`);
    writeFileSync(file, 'line 1\n');
    own(file);
    const id = await run('tail', [follow, file]); // -F also watches the file's directory
    await waitText(id, '^line 1$');
    appendFileSync(file, 'line 2\n');
    await waitText(id, '^line 2$');
    const rid = await cycle(id, 'tail', () => appendFileSync(file, 'line 3 (while down)\nline 4 (while down)\n'));
    await waitText(rid, '^line 4 \\(while down\\)$');
    appendFileSync(file, 'line 5\n');
    const s = await waitText(rid, '^line 5$');
    expect(s.lines.filter((l) => l.startsWith('line ')).join('|')).toBe('line 1|line 2|line 3 (while down)|line 4 (while down)|line 5');
    await client.request('session.kill', { id: rid, signal: 'KILL' });
  });

  it('refuses to checkpoint a watch whose path it cannot find, with the reason, and the program runs on', async () => {
    // A directory the program names only by path: not its cwd, not open, not mapped, nowhere under them.
    const outside = mkdtempSync('/tmp/vos-inotify-outside-');
    try {
      own(outside);
      const dir = join(outside, 'deep'); // (the entries of cwd's parent, /tmp, are searched: one level deeper)
      mkdirSync(dir);
      own(dir);
      const file = join(dir, 'f.txt');
      writeFileSync(file, 'one\n');
      own(file);
      const id = await run(join(programs, 'inotify-watch'), [dir, file]);
      await waitText(id, '^ready$');
      const out = join(work, 'unfindable.vosimg');
      const r = await vos(agent.home, ['checkpoint', id, '--out', out]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/watches a file with inotify \(fd 3, watch 2: device \d+:\d+, inode \d+\) that vOS cannot find by name/);
      expect(existsSync(out)).toBe(false);
      appendFileSync(file, 'two\n');
      await waitText(id, '^event wd=3 MODIFY name=$'); // still watching
      await client.request('session.kill', { id, signal: 'KILL' });
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it('a watched path gone at restore fails the restore with the path, running nothing', async () => {
    const dir = join(work, 'goes-away');
    mkdirSync(dir, { recursive: true });
    own(dir);
    const file = join(dir, 'f.txt');
    writeFileSync(file, 'one\n');
    own(file);
    const id = await run(join(programs, 'inotify-watch'), [dir, file]);
    await waitText(id, '^ready$');
    const image = join(work, `gone-${id}.vosimg`);
    const cp = await vos(agent.home, ['checkpoint', id, '--out', image]);
    expect(cp.code).toBe(0);
    await client.request('session.kill', { id, signal: 'KILL' });
    rmSync(dir, { recursive: true, force: true });
    const running = async (): Promise<string[]> => (await client.request('session.list', {})).filter((s) => s.state === 'running').map((s) => s.id);
    const before = await running();
    const r = await vos(agent.home, ['restore', image]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${dir}, which a program watches with inotify, is gone`);
    expect((await running()).filter((s) => !before.includes(s))).toEqual([]); // nothing new runs
  });

  it('refuses an image whose inotify watches are malformed: bad_image naming the record, nothing runs', async () => {
    const dir = join(work, 'malformed');
    mkdirSync(dir, { recursive: true });
    own(dir);
    const file = join(dir, 'f.txt');
    writeFileSync(file, 'one\n');
    own(file);
    const id = await run(join(programs, 'inotify-watch'), [dir, file]);
    await waitText(id, '^ready$');
    const image = join(work, `malformed-${id}.vosimg`);
    expect((await vos(agent.home, ['checkpoint', id, '--out', image, '--stop'])).code).toBe(0);
    const records = splitImage(readFileSync(image));
    const at = records.findIndex((r) => r.type === RECORD.OBJDATA && r.payload.includes(Buffer.from(dir)));
    expect(at).toBeGreaterThanOrEqual(0);
    // OBJDATA: u32 id, u32 messages, u32 watches, then the first watch's i32 wd.
    const damages: Array<[string, (p: Buffer) => void, RegExp]> = [
      ['a watch numbered 0', (p) => p.writeInt32LE(0, 12), /watch 0 of inotify object \d+ is malformed/],
      ['one watch more than the object says', (p) => p.writeUInt32LE(p.readUInt32LE(8) + 1, 8), /inotify object \d+ lists 3 watches, not 2/],
      ['a relative path', (p) => p.write('x', p.indexOf(Buffer.from(dir))), /watch 0 of inotify object \d+ is malformed/],
    ];
    const running = async (): Promise<string[]> => (await client.request('session.list', {})).filter((s) => s.state === 'running').map((s) => s.id);
    for (const [what, damage, message] of damages) {
      const payload = Buffer.from(records[at]!.payload);
      damage(payload);
      const bad = join(work, 'malformed-damaged.vosimg');
      writeFileSync(bad, joinImage(records.map((r, i) => (i === at ? { type: r.type, payload } : r))));
      own(bad);
      const before = await running();
      const e = await client.request('session.restore', { file: bad }).then(
        () => null,
        (err: unknown) => err,
      );
      expect(e, what).toBeInstanceOf(VosError);
      expect((e as VosError).code, what).toBe('bad_image');
      expect((e as VosError).message, what).toMatch(message);
      expect((e as VosError).details.record, what).toBe(`OBJDATA #${at + 1}`);
      expect((await running()).filter((s) => !before.includes(s)), what).toEqual([]);
    }
  });
});
