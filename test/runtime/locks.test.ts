/**
 * File locks across checkpoint and restore (ZDTM-style, issue 11 item 2): a program holding a
 * flock, a POSIX record lock on a range, an OFD lock; checkpoint, kill, restore; a process outside
 * the pod cannot take the lock while the restored program holds it, and can once it lets go. A
 * lock someone else holds at restore time fails the restore with the file's path (the program
 * never runs without it); two restores of one image cannot both hold it, nor a copy while the
 * original runs. And a real program: an SQLite transaction left open, restored, still keeps a
 * concurrent writer out ("database is locked") and commits. SysV semaphores (issue 11 item 8):
 * carried with their ids and values in the pod's own IPC namespace, so a restored copy never
 * shares the original's set; SEM_UNDO adjustments and SysV shared memory are refused at
 * checkpoint, with the reason. As root and as an ordinary user.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src-main/api/client.js';
import { VosError } from '../../src-main/api/errors.js';
import { startDaemon, vos, waitFor, type DaemonHandle } from '../helpers/agent-process.js';
import { buildTestPrograms, runAsUsers } from '../helpers/test-programs.js';

let programs: string;

beforeAll(() => {
  programs = buildTestPrograms();
});

afterAll(() => {
  rmSync(programs, { recursive: true, force: true });
});

const SQLITE = ['/usr/bin/sqlite3', '/usr/local/bin/sqlite3'].find((p) => existsSync(p));

const runAs = runAsUsers('lock tests');

type Kind = 'flock' | 'posix' | 'ofd';

describe.each(runAs)('file locks survive checkpoint and restore (as $who)', ({ user }) => {
  let agent: DaemonHandle;
  let client: ApiClient;
  let work: string;
  const holders: ChildProcess[] = [];
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
    for (const h of holders) h.kill('SIGKILL');
    await agent?.stop();
  });

  async function run(command: string, args: string[] = []): Promise<string> {
    const s = await client.request('session.create', { command, args, env: env(), cwd: work, cols: 100, rows: 30 });
    return s.id;
  }
  const send = (id: string, data: string): Promise<unknown> => client.request('session.input', { id, data });
  const waitText = (id: string, pattern: string, timeoutMs = 10_000): Promise<{ lines: string[] }> =>
    client.request('session.wait', { id, pattern, timeoutMs });

  /** Whether a process outside the pod can take the write lock now (and lets it go at once). */
  function outsideCan(file: string, kind: Kind, start = 0, len = 0): boolean {
    const r = spawnSync(join(programs, 'lockcheck'), [file, kind, String(start), String(len)], { encoding: 'utf8', timeout: 10_000 });
    if (r.stdout.trim() !== 'free' && r.stdout.trim() !== 'busy') throw new Error(`lockcheck: ${r.stdout}${r.stderr}`);
    return r.stdout.trim() === 'free';
  }

  /** A process outside the pod that holds the lock until it is killed. */
  async function holdOutside(file: string, kind: Kind, start = 0, len = 0): Promise<ChildProcess> {
    const h = spawn(join(programs, 'lockcheck'), [file, kind, String(start), String(len), 'hold'], { stdio: ['pipe', 'pipe', 'inherit'] });
    holders.push(h);
    let out = '';
    h.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor('the outside holder to answer', () => out.includes('\n'));
    expect(out.trim()).toBe('free');
    return h;
  }

  async function ended(h: ChildProcess): Promise<void> {
    h.kill('SIGKILL');
    await waitFor('the outside holder to end', () => h.exitCode !== null || h.signalCode !== null);
  }

  async function checkpoint(id: string, name: string): Promise<string> {
    const file = join(work, `${name}-${id}.vosimg`);
    const cp = await vos(agent.home, ['checkpoint', id, '--out', file, '--json']);
    expect(cp.stderr).toBe('');
    expect(cp.code).toBe(0);
    return file;
  }

  async function kill(id: string): Promise<void> {
    await client.request('session.kill', { id, signal: 'KILL' });
    await waitFor('the session to end', async () => (await client.request('session.list', {})).find((s) => s.id === id)?.state === 'exited');
  }

  const restore = async (file: string): Promise<string> => (await client.request('session.restore', { file })).id;
  async function refusedRestore(file: string): Promise<VosError> {
    const err = await client.request('session.restore', { file }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(VosError);
    return err as VosError;
  }

  const cases: { kind: Kind; start: number; len: number; outsideOk?: [number, number] }[] = [
    { kind: 'flock', start: 0, len: 0 },
    { kind: 'posix', start: 10, len: 20, outsideOk: [0, 10] },
    { kind: 'ofd', start: 100, len: 0, outsideOk: [0, 100] },
  ];

  it.each(cases)('a $kind lock still excludes another process after a restore, and is let go after', async ({ kind, start, len, outsideOk }) => {
    const file = join(work, `${kind}.lock`);
    writeFileSync(file, 'x'.repeat(200));
    own(file);
    const id = await run(join(programs, 'locker'), [file, kind, String(start), String(len)]);
    await waitText(id, `^locked ${kind}$`);
    expect(outsideCan(file, kind, start, len)).toBe(false);
    const image = await checkpoint(id, kind);
    await kill(id);
    expect(outsideCan(file, kind, start, len)).toBe(true); // the original is gone, and its lock with it
    const rid = await restore(image);
    await waitText(rid, 'tick \\d+$');
    expect(outsideCan(file, kind, start, len)).toBe(false);
    // A POSIX or OFD lock covers its range only: the bytes before it are free.
    if (outsideOk) expect(outsideCan(file, kind, outsideOk[0], outsideOk[1])).toBe(true);
    await send(rid, 'release\r');
    await waitText(rid, '^released$');
    expect(outsideCan(file, kind, start, len)).toBe(true);
    await kill(rid);
  });

  it.each(cases)('a restore whose $kind lock someone else holds now fails, naming the file, and never runs', async ({ kind, start, len }) => {
    const file = join(work, `taken-${kind}.lock`);
    writeFileSync(file, 'y'.repeat(200));
    own(file);
    const id = await run(join(programs, 'locker'), [file, kind, String(start), String(len)]);
    await waitText(id, `^locked ${kind}$`);
    const image = await checkpoint(id, `taken-${kind}`);
    await kill(id);
    const holder = await holdOutside(file, kind, start, len);
    const before = (await client.request('session.list', {})).length;
    const err = await refusedRestore(image);
    expect(err.code).toBe('unavailable');
    expect(err.details.path).toBe(file);
    expect(err.message).toContain(file);
    expect((await client.request('session.list', {})).length).toBe(before); // no session was left behind
    await ended(holder);
    const rid = await restore(image); // free again: it restores
    await waitText(rid, 'tick \\d+$');
    expect(outsideCan(file, kind, start, len)).toBe(false);
    await kill(rid);
  });

  it('two restores of one image cannot both hold the lock; nor can a copy while the original runs', async () => {
    const file = join(work, 'twice.lock');
    writeFileSync(file, 'z'.repeat(64));
    own(file);
    const id = await run(join(programs, 'locker'), [file, 'posix', '0', '0']);
    await waitText(id, '^locked posix$');
    const image = await checkpoint(id, 'twice'); // the original keeps running, and keeps its lock
    const copy = await refusedRestore(image);
    expect(copy.code).toBe('unavailable');
    expect(copy.details.path).toBe(file);
    await send(id, 'take\r'); // the original still has it (taking it again is fine for its owner)
    await waitText(id, '^locked again$');
    await kill(id);
    const first = await restore(image);
    await waitText(first, 'tick \\d+$');
    const second = await refusedRestore(image);
    expect(second.code).toBe('unavailable');
    expect(second.details.path).toBe(file);
    expect(outsideCan(file, 'posix')).toBe(false);
    await kill(first);
    expect(outsideCan(file, 'posix')).toBe(true);
  });

  /** The values the program shows last, and its set's id. */
  async function semValues(id: string): Promise<{ semid: string; values: string }> {
    const lines = (await client.request('session.screen', { id })).lines.filter((l) => l.startsWith('semid='));
    const m = /^semid=(\d+) values=(\d+,\d+)$/.exec(lines[lines.length - 1]!.trim())!;
    return { semid: m[1]!, values: m[2]! };
  }

  it('SysV semaphores keep their id and values across a restore, in the pod\'s own set: a copy does not share it', async () => {
    const id = await run(join(programs, 'semaphores'), ['sem']);
    await waitText(id, '^semid=\\d+ values=3,7$');
    await send(id, 'down\r');
    await waitText(id, 'values=2,7$');
    const { semid } = await semValues(id);
    // The set lives in the pod's IPC namespace: the machine's has no set of that id made by it.
    const host = readFileSync('/proc/sysvipc/sem', 'utf8');
    expect(host.split('\n').slice(1).map((l) => l.trim().split(/\s+/)[1])).not.toContain(semid);
    const image = await checkpoint(id, 'sem'); // the original runs on
    const copy = await restore(image);
    await send(copy, 'down\r');
    await waitText(copy, 'values=1,7$');
    expect((await semValues(copy)).semid).toBe(semid);
    // The original's set is its own: the copy's down did not reach it.
    await send(id, 'down\r');
    await waitText(id, 'values=1,7$');
    await send(id, 'down\r');
    await waitText(id, 'values=0,7$');
    await send(copy, 'down\r');
    await waitText(copy, 'values=0,7$');
    await kill(id);
    await kill(copy);
  });

  it('refuses at checkpoint, saying why, SEM_UNDO adjustments and SysV shared memory', async () => {
    const undo = await run(join(programs, 'semaphores'), ['undo']);
    await waitText(undo, '^semid=\\d+ values=3,7$');
    await send(undo, 'down\r');
    await waitText(undo, 'values=2,7$');
    const u = await vos(agent.home, ['checkpoint', undo, '--out', join(work, 'undo.vosimg')]);
    expect(u.code).not.toBe(0);
    expect(u.stderr).toMatch(/process \d+ \(semaphores\) used SysV semaphores with SEM_UNDO: it has adjustments to undo at its exit, which the kernel does not show and vOS cannot carry/);
    await waitText(undo, 'tick \\d+$'); // and it runs on
    await kill(undo);
    const shm = await run(join(programs, 'semaphores'), ['shm']);
    await waitText(shm, '^shmid=\\d+$');
    const s = await vos(agent.home, ['checkpoint', shm, '--out', join(work, 'shm.vosimg')]);
    expect(s.code).not.toBe(0);
    expect(s.stderr).toMatch(/SysV shared memory segment/);
    await kill(shm);
  });

  it('refuses at checkpoint a multi-threaded process of a session that uses SysV semaphores, saying why, and it runs on', async () => {
    // A second thread gives the process an undo list (CLONE_SYSVSEM) whose content the kernel does not show.
    const code = [
      'import ctypes, threading, time',
      'libc = ctypes.CDLL(None, use_errno=True)',
      'semid = libc.semget(0, 1, 0o1600)', // IPC_PRIVATE, IPC_CREAT | 0600
      'threading.Thread(target=time.sleep, args=(600,), daemon=True).start()',
      'n = 0',
      'while True:',
      '    n += 1; print("semid", semid, "tick", n, flush=True); time.sleep(0.2)',
    ].join('\n');
    const id = await run('python3', ['-c', code]);
    await waitText(id, '^semid \\d+ tick 2$');
    const r = await vos(agent.home, ['checkpoint', id, '--out', join(work, 'threads-sem.vosimg')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /process \d+ \(python3\) has 2 threads and the session uses SysV semaphores: the kernel gives every multi-threaded process a semaphore undo list \(SEM_UNDO\) and does not show what is in it, so vOS cannot tell whether adjustments would be lost at its exit, and does not checkpoint it/,
    );
    await waitText(id, 'tick (\\d*[1-9]\\d)$'); // and it runs on
    await kill(id);
  });

  it.skipIf(!SQLITE)('an SQLite transaction left open keeps a concurrent writer out after a restore, then commits', async () => {
    const dir = own(mkdtempSync(join(work, 'sqlite-')));
    const db = join(dir, 'data.db');
    const sql = (statement: string): { code: number | null; out: string } => {
      // The writer runs as the agent's user, as the session's program does.
      const args = user ? [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', SQLITE!, db, statement] : [db, statement];
      const r = spawnSync(user ? 'setpriv' : SQLITE!, args, { encoding: 'utf8', timeout: 20_000 });
      return { code: r.status, out: `${r.stdout}${r.stderr}` };
    };
    expect(sql('CREATE TABLE t(v TEXT); INSERT INTO t VALUES (\'before\');').code).toBe(0);
    const id = await run(SQLITE!, [db]);
    await waitText(id, 'sqlite>');
    await send(id, "BEGIN IMMEDIATE; INSERT INTO t VALUES ('in the transaction');\r");
    await send(id, "SELECT 'inserted ' || count(*) FROM t;\r");
    await waitText(id, '^inserted 2$');
    expect(sql("INSERT INTO t VALUES ('concurrent');").out).toMatch(/database is locked/);
    const image = await checkpoint(id, 'sqlite');
    await kill(id);
    // The original is gone: its journal is hot and SQLite would roll it back, but nobody may write
    // before the restored transaction has its lock again.
    const rid = await restore(image);
    await send(rid, "SELECT 'still ' || count(*) FROM t;\r");
    await waitText(rid, '^still 2$');
    const blocked = sql("INSERT INTO t VALUES ('concurrent');");
    expect(blocked.code).not.toBe(0);
    expect(blocked.out).toMatch(/database is locked/);
    await send(rid, "COMMIT; SELECT 'committed ' || count(*) FROM t;\r");
    await waitText(rid, '^committed 2$');
    expect(sql("INSERT INTO t VALUES ('after');").code).toBe(0);
    expect(sql('SELECT v FROM t ORDER BY rowid;').out.trim().split('\n')).toEqual(['before', 'in the transaction', 'after']);
    await kill(rid);
  });
});
