/**
 * The image store (`<state>/images`): listing, removal and retention; the kept copies of a
 * session's small open files (an image restored after its program deleted its temporary file);
 * and atomic writes: an agent killed mid-checkpoint, a full disk, a failing `--out F` over a good
 * image and a symlink planted at F leave every earlier image intact and restorable. As root the
 * set runs as root and as an ordinary user (nobody), like checkpoint-restore.test.ts.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  statfsSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { ApiClient } from '../../src-main/api/client.js';
import type { ImageInfo } from '../../src-main/api/protocol.js';
import { UNPRIVILEGED, endHosts, startDaemon, vos, waitFor, type DaemonHandle } from '../helpers/agent-process.js';
import { fillTestPrograms } from '../helpers/test-programs.js';

let programs: string;

beforeAll(() => {
  programs = mkdtempSync('/tmp/vos-programs-');
  chmodSync(programs, 0o755);
  fillTestPrograms(programs);
});

afterAll(() => {
  rmSync(programs, { recursive: true, force: true });
});

const isRoot = process.getuid?.() === 0;
const runAs = isRoot ? [{ who: 'root', user: null }, { who: 'nobody', user: UNPRIVILEGED }] : [{ who: 'this user', user: null }];
if (!isRoot) console.log('image store tests run as the current user only (not root: no second user to run as, and no tmpfs to fill)');

const sha = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

describe.each(runAs)('the image store (as $who)', ({ user }) => {
  let agent: DaemonHandle;
  let client: ApiClient;
  const env = (): Record<string, string> => ({ ...(process.env as Record<string, string>), HOME: agent.home });
  const own = (path: string): string => {
    if (user) chownSync(path, user.uid, user.gid);
    return path;
  };
  const images = (): string => join(agent.home, 'images');

  beforeAll(async () => {
    agent = await startDaemon(user ? { asUser: user } : {});
    client = await agent.connect();
  });

  afterAll(async () => {
    await agent?.stop();
  });

  async function run(command: string, args: string[] = []): Promise<string> {
    const s = await client.request('session.create', { command, args, env: env(), cwd: agent.home, cols: 100, rows: 30 });
    return s.id;
  }
  const waitText = (id: string, pattern: string, timeoutMs = 10_000): Promise<{ lines: string[] }> =>
    client.request('session.wait', { id, pattern, timeoutMs });
  const send = (id: string, data: string): Promise<unknown> => client.request('session.input', { id, data });
  async function kill(id: string): Promise<void> {
    await client.request('session.kill', { id, signal: 'KILL' });
    await waitFor('the session to end', async () => (await client.request('session.list', {})).find((s) => s.id === id)?.state === 'exited');
  }
  async function checkpoint(id: string, extra: string[] = []): Promise<{ image: string | null; file: string; removed: string[]; keptFiles: number }> {
    const r = await vos(agent.home, ['checkpoint', id, ...extra, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout) as { image: string | null; file: string; removed: string[]; keptFiles: number };
  }
  async function list(session?: string): Promise<ImageInfo[]> {
    const r = await vos(agent.home, ['images', ...(session ? [session] : []), '--json']);
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout) as ImageInfo[];
  }
  /** Restores IMAGE|FILE and proves the counter counts on with the token it had. */
  async function restoresCounter(what: string, token: string): Promise<void> {
    const r = await vos(agent.home, ['restore', what]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rid = r.stdout.trim();
    await waitText(rid, `token=${token} count=\\d*[1-9]\\d$`);
    await kill(rid);
  }
  async function counter(): Promise<{ id: string; token: string }> {
    const id = await run(join(programs, 'counter'), ['50']);
    const s = await waitText(id, 'count=3$');
    return { id, token: /token=(\w+)/.exec(s.lines.join('\n'))![1]! };
  }
  const temporaries = (dir: string): string[] => readdirSync(dir).filter((n) => n.includes('.tmp-'));

  it('an image restored after its program deleted its temporary file: the file comes back with its content', async () => {
    const path = `/tmp/vos-kept-${process.pid}-${user ? 'nobody' : 'root'}`;
    rmSync(path, { force: true });
    onTestFinished(() => rmSync(path, { force: true }));
    const id = await run(join(programs, 'temp-file'), [path]);
    await waitText(id, '^opened ');
    const cp = await checkpoint(id);
    expect(cp.image).toMatch(/^[0-9a-f]{8}$/);
    expect(cp.keptFiles).toBeGreaterThanOrEqual(1);
    await send(id, 'd\r');
    await waitText(id, '^deleted$');
    expect(existsSync(path)).toBe(false);
    await kill(id);
    try {
      const r = await vos(agent.home, ['restore', cp.image!]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const rid = r.stdout.trim();
      expect(readFileSync(path, 'utf8')).toBe('kept content of a temporary file\n');
      expect(statSync(path).mode & 0o777).toBe(0o640);
      await send(rid, '\r');
      await waitText(rid, '^read back 33 bytes: kept content of a temporary file$');
      await send(rid, 'd\r'); // the program goes on as it did: it deletes the file again
      await waitText(rid, '^deleted$');
      await kill(rid);

      // A file there with other content is never replaced: the restore is refused, naming it.
      writeFileSync(path, 'something else\n');
      own(path);
      const refused = await vos(agent.home, ['restore', cp.image!]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`${path} differs here`);
      expect(readFileSync(path, 'utf8')).toBe('something else\n');
    } finally {
      rmSync(path, { force: true });
    }
  });

  it('a file the program only appends to (a shell >> redirection, a log) that changed since is taken as it is, and the restore says so', async () => {
    const path = `/tmp/vos-append-${process.pid}-${user ? 'nobody' : 'root'}`;
    writeFileSync(path, 'before\n');
    own(path);
    onTestFinished(() => rmSync(path, { force: true }));
    // fd 3 is open write-only for appending; each typed line is appended to it.
    const id = await run('sh', ['-c', 'exec 3>>"$0"; echo ready; while read l; do echo "got $l" >&3; echo "wrote $l"; done', path]);
    await waitText(id, '^ready$');
    await send(id, 'one\r');
    await waitText(id, '^wrote one$');
    const cp = await checkpoint(id);
    await kill(id);
    writeFileSync(path, 'rewritten by someone else\n'); // other content, other size
    const r = await vos(agent.home, ['restore', cp.image!]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`${path}: other content than at the checkpoint; the session only appends to it`);
    const rid = r.stdout.trim();
    await send(rid, 'two\r');
    await waitText(rid, '^wrote two$');
    expect(readFileSync(path, 'utf8')).toBe('rewritten by someone else\ngot two\n');
    expect((await client.request('session.list', {})).find((x) => x.id === rid)?.restoreNote).toContain(path);
    await kill(rid);
  });

  it('a node REPL whose history file changed since is refused, naming --take-as-is; with it, it is restored and the note says so', async () => {
    // node keeps its history open read-write and rewrites it whole: another REPL's history there
    // is refused by default (it would be overwritten), taken when the user says so.
    const history = `/tmp/vos-history-${process.pid}-${user ? 'nobody' : 'root'}`;
    writeFileSync(history, '');
    own(history);
    onTestFinished(() => rmSync(history, { force: true }));
    const { id } = await client.request('session.create', {
      command: process.execPath,
      args: [],
      env: { ...env(), NODE_REPL_HISTORY: history },
      cwd: agent.home,
      cols: 100,
      rows: 30,
    });
    await waitText(id, '^> $|^>$');
    await send(id, 'let x = 21\r');
    await waitText(id, '^undefined$');
    await waitFor('node to write its history', () => readFileSync(history, 'utf8').includes('let x = 21'));
    const cp = await checkpoint(id);
    await kill(id);
    writeFileSync(history, 'another REPL was here\n');
    const refused = await vos(agent.home, ['restore', cp.image!]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`${history} differs here (other content; to let the session use it as it is, ask again with --take-as-is ${history})`);
    const typo = await vos(agent.home, ['restore', cp.image!, '--take-as-is', `${history}.typo`]);
    expect(typo.code).toBe(1);
    expect(typo.stderr).toContain('not a file the session has open');
    const r = await vos(agent.home, ['restore', cp.image!, '--take-as-is', history]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe(`vos: note: ${history}: other content than at the checkpoint; the session uses it as it is here, as asked (take as is)\n`);
    const rid = r.stdout.trim();
    await send(rid, 'x * 2\r');
    await waitText(rid, '^42$');
    await waitFor('node to write its history again', () => readFileSync(history, 'utf8').includes('x * 2'));
    await kill(rid);
  });

  it('vos images lists, rm removes, and a kept file two images share is stored once and goes with the last', async () => {
    // Other tests' images keep the same content: start from an empty store.
    for (const i of await list()) expect((await vos(agent.home, ['images', 'rm', i.id])).code).toBe(0);
    const path = `/tmp/vos-shared-${process.pid}-${user ? 'nobody' : 'root'}`; // outside the state directory, whose files are never kept
    onTestFinished(() => rmSync(path, { force: true }));
    const id = await run(join(programs, 'temp-file'), [path]);
    await waitText(id, '^opened ');
    const a = await checkpoint(id);
    const b = await checkpoint(id);
    const mine = await list(id);
    expect(mine.map((i) => i.id)).toEqual([b.image, a.image]); // newest first
    expect(mine[0]).toMatchObject({ session: { id }, kind: 'manual', parent: null, state: 'ok', keptFiles: a.keptFiles });
    expect(mine[0]!.bytes).toBe(statSync(b.file).size);
    const blobs = (): string[] => readdirSync(join(images(), 'blobs'));
    const blob = createHash('sha256').update('kept content of a temporary file\n').digest('hex');
    expect(blobs()).toContain(blob);
    const table = await vos(agent.home, ['images', id]);
    expect(table.stdout).toMatch(new RegExp(`^${b.image}\\s+${id}\\s+temp-file\\s+\\d+s ago\\s+manual\\s`, 'm'));

    expect((await vos(agent.home, ['images', 'rm', a.image!])).code).toBe(0);
    expect(existsSync(a.file)).toBe(false);
    expect(blobs()).toContain(blob); // b still needs it
    expect((await vos(agent.home, ['images', 'rm', b.image!])).code).toBe(0);
    expect(blobs()).not.toContain(blob);
    rmSync(path, { force: true });
    expect(await list(id)).toEqual([]);
    const unknown = await vos(agent.home, ['images', 'rm', a.image!]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no image/);
    await kill(id);
  });

  it('--keep N keeps the newest N images of that session and no other session loses one', async () => {
    const other = await counter();
    const kept = await checkpoint(other.id);
    const { id, token } = await counter();
    const made: string[] = [];
    for (let i = 0; i < 4; i++) made.push((await checkpoint(id, ['--keep', '2'])).image!);
    expect((await list(id)).map((i) => i.id)).toEqual([made[3], made[2]]);
    expect((await list(other.id)).map((i) => i.id)).toEqual([kept.image]);
    for (const gone of made.slice(0, 2)) expect(existsSync(join(images(), `${gone}.vosimg`))).toBe(false);
    await kill(id);
    await restoresCounter(made[3]!.slice(0, 5), token); // a unique prefix does
    await kill(other.id);
  });

  it('a damaged image is listed as damaged and refused', async () => {
    const { id } = await counter();
    const cp = await checkpoint(id);
    truncateSync(cp.file, Math.floor(statSync(cp.file).size / 2));
    const [info] = await list(id);
    expect(info).toMatchObject({ state: 'damaged' });
    expect(info!.problem).toMatch(/of its \d+ bytes/);
    const r = await vos(agent.home, ['restore', cp.image!]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot restore image/);
    rmSync(cp.file);
    expect((await list(id))[0]!.problem).toBe('the image file is missing');
    await kill(id);
  });

  it('a failing checkpoint --out F over a good image leaves F as it was, with no temporary file', async () => {
    const dir = own(mkdtempSync(join(agent.home, 'out-')));
    const file = join(dir, 'good.vosimg');
    const { id, token } = await counter();
    await checkpoint(id, ['--out', file]);
    const before = sha(file);
    const stat = await run('bash', ['-c', `perl -e 'msgget(0, 0600) // die; sleep 1000' & exec ${join(programs, 'counter')} 50`]);
    await waitText(stat, 'count=2$');
    const r = await vos(agent.home, ['checkpoint', stat, '--out', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/SysV message queue/);
    expect(sha(file)).toBe(before);
    expect(temporaries(dir)).toEqual([]);
    await kill(id);
    await kill(stat);
    await restoresCounter(file, token);
  });

  it('checkpoint --out through a planted symlink replaces the link, never writes through it', async () => {
    const dir = own(mkdtempSync(join(agent.home, 'shared-')));
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'precious\n');
    own(victim);
    const link = join(dir, 'image.vosimg');
    symlinkSync(victim, link);
    if (user) execFileSync('chown', ['-h', `${user.uid}:${user.gid}`, link]);
    const { id, token } = await counter();
    await checkpoint(id, ['--out', link]);
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(lstatSync(link).isFile()).toBe(true);
    await kill(id);
    await restoresCounter(link, token);
  });

  it('an agent SIGKILLed mid-checkpoint leaves the earlier images intact: the next agent lists and restores them', async () => {
    const { id, token } = await counter();
    const earlier = await checkpoint(id);
    const earlierHash = sha(earlier.file);
    const big = await run(join(programs, 'memhog'), ['768']);
    await waitText(big, '^ready 768 MiB$', 30_000);
    const attempt = client.request('session.checkpoint', { id: big }).catch((err: Error) => err);
    // Killed while the big image is being written (its temporary file is growing).
    await waitFor(
      'the big image to be on its way',
      () => readdirSync(images()).some((n) => n.includes('.tmp-') && statSync(join(images(), n)).size > 16 * 1024 * 1024),
      30_000,
      5,
    );
    agent.proc.kill('SIGKILL');
    await attempt;
    await agent.stop({ keepHome: true });
    agent = await startDaemon({ home: agent.home, ...(user ? { asUser: user } : {}) });
    client = await agent.connect();
    expect(sha(earlier.file)).toBe(earlierHash);
    const all = await list();
    expect(all.find((i) => i.id === earlier.image)).toMatchObject({ state: 'ok' });
    expect(all.filter((i) => i.session.id === big)).toEqual([]);
    expect(temporaries(images())).toEqual([]); // swept by the new agent
    await kill(big).catch(() => {});
    await kill(id).catch(() => {});
    await restoresCounter(earlier.image!, token);
  }, 120_000);

  it.runIf(isRoot)('a full disk (a small tmpfs as the images directory and as --out\'s) says so and keeps the earlier images', async () => {
    // A fresh agent whose images directory is a 48 MiB tmpfs.
    await agent.stop();
    const home = mkdtempSync('/tmp/vos-test-');
    const dir = join(home, 'images');
    mkdirSync(dir);
    const owner = user ? `,uid=${user.uid},gid=${user.gid}` : '';
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=48m,mode=0700${owner}`, 'vos-test-full', dir]);
    try {
      agent = await startDaemon({ home, ...(user ? { asUser: user } : {}) });
      client = await agent.connect();
      const { id, token } = await counter();
      const earlier = await checkpoint(id);
      const outDir = join(dir, 'outside');
      mkdirSync(outDir);
      own(outDir);
      const outFile = join(outDir, 'good.vosimg');
      await checkpoint(id, ['--out', outFile]);
      const hashes = [sha(earlier.file), sha(outFile)];
      // Fill the tmpfs up to its last 64 KiB.
      const fs = statfsSync(dir);
      writeFileSync(join(dir, 'filler'), Buffer.alloc(Math.max(0, fs.bavail * fs.bsize - 64 * 1024)));
      for (const args of [[], ['--out', outFile]]) {
        const r = await vos(agent.home, ['checkpoint', id, ...args]);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/the disk is full/);
      }
      expect([sha(earlier.file), sha(outFile)]).toEqual(hashes);
      expect(temporaries(dir)).toEqual([]);
      expect(temporaries(outDir)).toEqual([]);
      expect((await list(id)).map((i) => i.id)).toEqual([earlier.image]);
      await kill(id);
      await restoresCounter(earlier.image!, token);
      await restoresCounter(outFile, token);
    } finally {
      await agent.stop({ keepHome: true });
      await endHosts(home); // the home goes below: its sessions go first
      try {
        execFileSync('umount', [dir]);
      } catch {
        execFileSync('umount', ['-l', dir]);
      }
      rmSync(home, { recursive: true, force: true });
      agent = await startDaemon(user ? { asUser: user } : {}); // for afterAll
    }
  }, 120_000);
});
