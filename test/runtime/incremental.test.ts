/**
 * Incremental checkpoints at the runtime's level (`vos-init checkpoint --incremental [--parent
 * ID]`, `vos-init restore|verify --parent FILE`): a chain of images of a program that keeps
 * rewriting its memory restores with every page as the program last wrote it (the program checks
 * all of them, and goes on from the step it stopped at); the incremental images are a fraction
 * of the whole one; an image alone, with a wrong or a damaged parent is refused, naming it; and
 * where tracking is lost or unavailable the image is whole and says why. As root and as an
 * unprivileged user.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, mkdtempSync, openSync, readFileSync, readdirSync, readSync, renameSync, rmSync, statSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import pty from '@lydell/node-pty';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RECORD } from '../../src-main/agent/runtime/image-records.js';
import { UNPRIVILEGED, waitFor } from '../helpers/agent-process.js';
import { joinImage, splitImage } from '../helpers/image-edit.js';
import { RUNTIME_DIR } from '../helpers/runtime-dir.js';
import { fillTestPrograms } from '../helpers/test-programs.js';

const INIT = join(RUNTIME_DIR, 'vos-init');
const LIB = join(RUNTIME_DIR, 'libvos.so');
const isRoot = process.getuid?.() === 0;
if (!isRoot) console.log('incremental checkpoint tests run as the current user only (not root: no second user to run as)');

describe('incremental checkpoints (vos-init checkpoint --incremental)', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync('/tmp/vos-test-incremental-');
    chmodSync(dir, 0o777);
    fillTestPrograms(dir);
    for (const p of ['dirtier', 'counter', 'mapper', 'advice', 'zapper', 'reserver']) chmodSync(join(dir, p), 0o755);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const asUser = (user: 'root' | 'nobody'): string[] =>
    user === 'nobody' ? ['setpriv', `--reuid=${UNPRIVILEGED.uid}`, `--regid=${UNPRIVILEGED.gid}`, '--clear-groups'] : [];

  function onPty(cmd: string[], env: Record<string, string> = {}): { term: pty.IPty; out: () => string } {
    const term = pty.spawn(cmd[0]!, cmd.slice(1), { cols: 80, rows: 24, env: { ...(process.env as Record<string, string>), ...env } });
    let text = '';
    term.onData((d) => (text += d));
    return { term, out: () => text };
  }

  const ticks = (text: string): number[] => [...text.matchAll(/tick (\d+) ok/g)].map((m) => Number(m[1]));
  const steps = (text: string): number[] => [...text.matchAll(/step (\d+)/g)].map((m) => Number(m[1]));

  /**
   * A restored dirtier checks every page several times, with nothing wrong, and goes on from the
   * step after the original's last (`before`: what the original printed until it was stopped).
   */
  async function checksOn(copy: { out: () => string }, before: string): Promise<void> {
    const last = Math.max(...ticks(before));
    await waitFor('the copy to check its memory, several times', () => ticks(copy.out()).filter((n) => n > last).length >= 3 || /vos: /.test(copy.out()), 20_000);
    expect(copy.out()).not.toMatch(/vos: /);
    expect(copy.out()).not.toContain('BAD');
    expect(steps(copy.out())[0]).toBe(Math.max(...steps(before)) + 1);
  }

  /** A restored zapper or reserver, asked to "check" until it answers (the restore may not read
   * the terminal yet): every page as it should be. */
  async function checksOk(copy: { term: pty.IPty; out: () => string }): Promise<void> {
    await waitFor('the copy to check its memory', () => {
      if (!/check (ok|BAD)|vos: /.test(copy.out())) copy.term.write('check\r');
      return /check (ok|BAD)|vos: /.test(copy.out());
    }, 20_000, 300);
    expect(copy.out()).toMatch(/check ok/);
  }

  interface Taken {
    out: string;
    id: string;
    incremental: boolean;
    fullReason: string | null;
    bytes: number;
  }

  /** One checkpoint of the pod at `pod` into `image`. */
  function take(user: 'root' | 'nobody', pod: string, image: string, args: string[]): Taken {
    const cp = spawnSync('sh', ['-c', `exec "$@" 3>${image}`, 'sh', ...asUser(user), INIT, 'checkpoint', '--control', pod, ...args], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(cp.status, cp.stdout + cp.stderr).toBe(0);
    const ok = /^ok .*image_id=([0-9a-f]{32}) depth=\d+ incremental=([01])/m.exec(cp.stdout);
    expect(ok, cp.stdout).not.toBeNull();
    return {
      out: cp.stdout,
      id: ok![1]!,
      incremental: ok![2] === '1',
      fullReason: /^full (.*)$/m.exec(cp.stdout)?.[1] ?? null,
      bytes: statSync(image).size,
    };
  }

  /** `vos-init restore` without a terminal, for a refusal (it refuses before it needs one). */
  function refusedRestore(image: string, parents: string[]): string {
    const r = spawnSync(INIT, ['restore', '--control', join(dir, 'never.sock'), '--image', image, ...parents.flatMap((p) => ['--parent', p])], {
      encoding: 'utf8',
      timeout: 30_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(r.status).not.toBe(0);
    return r.stdout + r.stderr;
  }

  const runAs = isRoot ? (['root', 'nobody'] as const) : (['root'] as const);
  for (const user of runAs) {
    it(`a chain of images restores with every page as last written; each link is checked (${user === 'root' ? 'this user' : 'as nobody'})`, async () => {
      const pod = join(dir, `${user}.sock`);
      const img = (n: string): string => join(dir, `${user}-${n}.img`);
      // 32 MiB, 4 random pages rewritten every 10 ms: between checkpoints a few hundred pages change.
      const original = onPty([...asUser(user), INIT, 'launch', '--control', pod, '--runtime', LIB, '--', join(dir, 'dirtier'), '32', '4', '10000']);
      let copy: ReturnType<typeof onPty> | null = null;
      try {
        await waitFor('the program to run', () => ticks(original.out()).length >= 2);
        const a = take(user, pod, img('a'), ['--incremental']);
        expect(a.incremental).toBe(false);
        expect(a.fullReason).toMatch(/^the first checkpoint since the session started/);
        expect(a.bytes).toBeGreaterThan(32 << 20);
        await waitFor('the program to go on', () => ticks(original.out()).length >= 4);
        const b = take(user, pod, img('b'), ['--incremental', '--parent', a.id]);
        expect(b.incremental, b.out).toBe(true);
        expect(b.fullReason).toBeNull();
        expect(Number(/kept_pages=(\d+)/.exec(b.out)![1])).toBeGreaterThan(6000); // most of the 8192 pages come from a
        expect(b.bytes).toBeLessThan(a.bytes / 4);
        await waitFor('the program to go on', () => ticks(original.out()).length >= 6);
        // --stop: the original ends where the last image was taken; its last step is the witness.
        const ended = new Promise<void>((r) => original.term.onExit(() => r()));
        const c = take(user, pod, img('c'), ['--incremental', '--parent', b.id, '--stop']);
        expect(c.incremental).toBe(true);
        expect(c.bytes).toBeLessThan(a.bytes / 4);
        await ended;

        // Alone, or with the wrong parent, or a damaged one: refused, saying which it needs.
        const alone = spawnSync(INIT, ['verify', img('c')], { encoding: 'utf8' });
        expect(alone.status).toBe(1);
        expect(alone.stderr).toMatch(/is an incremental image: restoring it needs its parent image \(chain id [0-9a-f]{32}, 2 below it\)/);
        expect(spawnSync(INIT, ['verify', '--parent', img('b'), '--parent', img('a'), img('c')]).status).toBe(0);
        expect(refusedRestore(img('c'), [])).toMatch(/needs its parent image/);
        expect(refusedRestore(img('c'), [img('a')])).toContain(`${img('a')} is not the parent of ${img('c')}`);
        expect(refusedRestore(img('c'), [img('b')])).toMatch(/needs its parent image .*1 below it/);
        const damaged = img('b-damaged');
        copyFileSync(img('b'), damaged);
        const fd = openSync(damaged, 'r+');
        const at = Math.floor(statSync(damaged).size / 2);
        const byte = Buffer.alloc(1);
        readSync(fd, byte, 0, 1, at);
        byte[0] = byte[0]! ^ 0xff;
        writeSync(fd, byte, 0, 1, at);
        closeSync(fd);
        expect(refusedRestore(img('c'), [damaged, img('a')])).toMatch(new RegExp(`the parent image ${damaged} of ${img('c')} cannot be used: .*damaged`));

        // The whole chain: the program checks every page and goes on from its last step.
        const restore = `${INIT} restore --control ${join(dir, `${user}-copy.sock`)} --image ${img('c')} --parent ${img('b')} --parent ${img('a')}`;
        copy = onPty(user === 'nobody' ? [...asUser(user), 'script', '-qfec', `exec ${restore}`, '/dev/null'] : restore.split(' '));
        await checksOn(copy, original.out());
      } finally {
        original.term.kill('SIGKILL');
        copy?.term.kill('SIGKILL');
      }
    }, 90_000);
  }

  for (const program of ['dirtier', 'static-dirtier']) {
    it(`a long chain taken while the program writes fast: every page written between two images is in the second (${program}${program === 'dirtier' ? '' : ': stopped from outside, its tracking made through ptrace'})`, async () => {
      // Pages are write-protected again just before the freeze (out of the frozen time) and the
      // few written in the moment since while frozen: a page written on either side of that
      // moment must be in the image. Seven links (the longest chain: the 8th is whole), 8 pages
      // written every millisecond.
      const pod = join(dir, `fast-${program}.sock`);
      const img = (n: number): string => join(dir, `fast-${program}-${n}.img`);
      const original = onPty([INIT, 'launch', '--control', pod, '--runtime', LIB, '--', join(dir, program), '16', '8', '1000']);
      let copy: ReturnType<typeof onPty> | null = null;
      try {
        await waitFor('the program to run', () => ticks(original.out()).length >= 2);
        const ended = new Promise<void>((r) => original.term.onExit(() => r()));
        const ids: string[] = [];
        const LINKS = 7;
        for (let n = 0; n < LINKS; n++) {
          const at = ticks(original.out()).length;
          await waitFor('the program to go on', () => ticks(original.out()).length > at);
          const last = n === LINKS - 1;
          const t = take('root', pod, img(n), ['--incremental', ...(n ? ['--parent', ids[n - 1]!] : []), ...(last ? ['--stop'] : [])]);
          expect(t.incremental, t.out).toBe(n > 0);
          ids.push(t.id);
        }
        await ended; // --stop: the original ends where the last image was taken
        const parents = Array.from({ length: LINKS - 1 }, (_, k) => ['--parent', img(LINKS - 2 - k)]).flat();
        copy = onPty([INIT, 'restore', '--control', join(dir, `fast-copy-${program}.sock`), '--image', img(LINKS - 1), ...parents]);
        await checksOn(copy, original.out());
      } finally {
        original.term.kill('SIGKILL');
        copy?.term.kill('SIGKILL');
      }
    }, 90_000);
  }

  for (const kind of ['anonymous memory', 'a private file mapping'] as const) {
    it(`pages discarded (MADV_DONTNEED) after an image come back as the kernel gives them then, not as the parent had them (${kind})`, async () => {
      const pod = join(dir, `zap-${kind.length}.sock`);
      const img = (n: string): string => join(dir, `zap-${kind.length}-${n}.img`);
      const file = kind === 'a private file mapping' ? ['file', join(dir, `zap-${kind.length}.data`)] : [];
      const original = onPty([INIT, 'launch', '--control', pod, '--runtime', LIB, '--', join(dir, 'zapper'), ...file]);
      let copy: ReturnType<typeof onPty> | null = null;
      try {
        await waitFor('the program to run', () => /ready /.test(original.out()));
        const a = take('root', pod, img('a'), ['--incremental']);
        original.term.write('zap\r');
        await waitFor('the pages to be discarded', () => /zapped/.test(original.out()));
        const ended = new Promise<void>((r) => original.term.onExit(() => r()));
        const b = take('root', pod, img('b'), ['--incremental', '--parent', a.id, '--stop']);
        expect(b.incremental, b.out).toBe(true);
        await ended;
        copy = onPty([INIT, 'restore', '--control', join(dir, `zap-${kind.length}-copy.sock`), '--image', img('b'), '--parent', img('a')]);
        await checksOk(copy);
      } finally {
        original.term.kill('SIGKILL');
        copy?.term.kill('SIGKILL');
      }
    }, 60_000);
  }

  it('a large reservation left untouched (a JVM heap, V8, Go arenas) stays out of the images; a page touched since comes in', async () => {
    // Protecting the untouched pages would leave uffd-wp markers there, which the next image took
    // for swapped pages: 4 GiB read as zeros (a JVM moved with seconds of downtime).
    const pod = join(dir, 'reserver.sock');
    const img = (n: string): string => join(dir, `reserver-${n}.img`);
    const original = onPty([INIT, 'launch', '--control', pod, '--runtime', LIB, '--', join(dir, 'reserver')]);
    let copy: ReturnType<typeof onPty> | null = null;
    const zeroPages = (t: Taken): number => Number(/ zero_pages=(\d+)/.exec(t.out)![1]);
    try {
      await waitFor('the program to run', () => /ready/.test(original.out()));
      const a = take('root', pod, img('a'), ['--incremental']);
      const b = take('root', pod, img('b'), ['--incremental', '--parent', a.id]);
      original.term.write('touch\r');
      await waitFor('the page to be written', () => /touched/.test(original.out()));
      const ended = new Promise<void>((r) => original.term.onExit(() => r()));
      const c = take('root', pod, img('c'), ['--incremental', '--parent', b.id, '--stop']);
      await ended;
      expect(b.incremental && c.incremental, b.out + c.out).toBe(true);
      // 1 Mi pages reserved: each image reads a few thousand at most (stacks, libraries).
      for (const t of [a, b, c]) expect(zeroPages(t), t.out).toBeLessThan(4096);
      copy = onPty([INIT, 'restore', '--control', join(dir, 'reserver-copy.sock'), '--image', img('c'), '--parent', img('b'), '--parent', img('a')]);
      await checksOk(copy);
    } finally {
      original.term.kill('SIGKILL');
      copy?.term.kill('SIGKILL');
    }
  }, 60_000);

  /** An image's records as `vos-init verify --list` reads them (with its parents, which it checks). */
  function listRecords(image: string, parents: string[]): { type: number; length: number }[] {
    const r = spawnSync(INIT, ['verify', '--list', ...parents.flatMap((p) => ['--parent', p]), image], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    return r.stdout
      .trim()
      .split('\n')
      .map((line) => line.split(' '))
      .map((f) => ({ type: Number(f[2]), length: Number(f[1]) }));
  }
  const bytesOf = (records: { type: number; length: number }[], type: number): number =>
    records.filter((r) => r.type === type).reduce((n, r) => n + r.length, 0);
  const countOf = (records: { type: number }[], type: number): number => records.filter((r) => r.type === type).length;

  for (const user of runAs) {
    it(`an incremental image leaves unchanged mapped files to its parent; gone from disk, they come back from the parent's content (${user === 'root' ? 'this user' : 'as nobody'})`, async () => {
      const pod = join(dir, `${user}-map.sock`);
      const img = (n: string): string => join(dir, `${user}-map-${n}.img`);
      const data = join(dir, `${user}-data.bin`);
      writeFileSync(data, randomBytes(4 << 20));
      chmodSync(data, 0o644);
      const original = onPty([...asUser(user), INIT, 'launch', '--control', pod, '--runtime', LIB, '--', join(dir, 'mapper'), data]);
      let copy: ReturnType<typeof onPty> | null = null;
      try {
        await waitFor('the program to run', () => ticks(original.out()).length >= 2);
        const a = take(user, pod, img('a'), ['--incremental']);
        expect(a.incremental).toBe(false);
        expect(bytesOf(listRecords(img('a'), []), RECORD.FILEDATA)).toBeGreaterThanOrEqual(4 << 20);
        await waitFor('the program to go on', () => ticks(original.out()).length >= 4);
        const b = take(user, pod, img('b'), ['--incremental', '--parent', a.id]);
        expect(b.incremental, b.out).toBe(true);
        // No file content at all: the data, the program and its libraries are all the parent's.
        const inB = listRecords(img('b'), [img('a')]);
        expect(bytesOf(inB, RECORD.FILEDATA)).toBe(0);
        expect(countOf(inB, RECORD.FILE)).toBe(0);
        expect(countOf(inB, RECORD.FILEREF)).toBeGreaterThanOrEqual(3);
        expect(Number(/parent_files=(\d+)/.exec(b.out)![1])).toBe(countOf(inB, RECORD.FILEREF));
        expect(b.bytes).toBeLessThan(1 << 20);
        await waitFor('the program to go on', () => ticks(original.out()).length >= 6);
        const ended = new Promise<void>((r) => original.term.onExit(() => r()));
        const c = take(user, pod, img('c'), ['--incremental', '--parent', b.id, '--stop']);
        expect(c.incremental).toBe(true);
        expect(bytesOf(listRecords(img('c'), [img('b'), img('a')]), RECORD.FILEDATA)).toBe(0);
        await ended;
        const last = Math.max(...ticks(original.out()));

        // A parent without that content (its description of the data file names another hash: a
        // valid image alone) is refused, naming it and the file.
        const other = img('a-other');
        const records = splitImage(readFileSync(img('a')));
        const described = records.find((r) => r.type === RECORD.FILE && r.payload.includes(Buffer.from(data)))!;
        described.payload.writeBigUInt64LE(described.payload.readBigUInt64LE(24) ^ 1n, 24); // u32 id, u32 deleted, u64 size, i64 mtime, u64 hash
        writeFileSync(other, joinImage(records));
        expect(spawnSync(INIT, ['verify', other], { encoding: 'utf8' }).status).toBe(0);
        const refused = spawnSync(INIT, ['verify', '--parent', img('b'), '--parent', other, img('c')], { encoding: 'utf8' });
        expect(refused.status).toBe(1);
        expect(refused.stderr).toMatch(new RegExp(`the parent image ${other} \\(chain id [0-9a-f]{32}\\) lacks the content of ${data}, which ${img('b')} takes from it`));
        expect(refusedRestore(img('c'), [img('b'), other])).toContain(`lacks the content of ${data}`);

        // The data file gone: the chain rebuilds it (in the cache) from a's content, through b.
        renameSync(data, `${data}.away`);
        const cache = join(dir, `${user}-cache`);
        const restore = `${INIT} restore --control ${join(dir, `${user}-map-copy.sock`)} --cache ${cache} --image ${img('c')} --parent ${img('b')} --parent ${img('a')}`;
        copy = onPty(user === 'nobody' ? [...asUser(user), 'script', '-qfec', `exec ${restore}`, '/dev/null'] : restore.split(' '));
        await waitFor('the copy to check the mapped file, several times', () => ticks(copy!.out()).filter((n) => n > last).length >= 3 || /vos: |BAD/.test(copy!.out()), 20_000);
        expect(copy.out()).not.toMatch(/vos: /);
        expect(copy.out()).not.toContain('BAD');
        expect(readdirSync(cache).filter((n) => n.endsWith(`-${user}-data.bin`))).toHaveLength(1);
      } finally {
        original.term.kill('SIGKILL');
        copy?.term.kill('SIGKILL');
      }
    }, 90_000);
  }

  it('a process that ran exec since the previous image is written whole, then followed again; the chain restores', async () => {
    const pod = join(dir, 'exec.sock');
    const img = (n: string): string => join(dir, `exec-${n}.img`);
    // A shell that waits for a line, then becomes the dirtier (same pid and start time, new memory).
    const original = onPty([INIT, 'launch', '--control', pod, '--runtime', LIB, '--', '/bin/sh', '-c', `echo waiting; read x; exec ${join(dir, 'dirtier')} 16 1 10000`]);
    let copy: ReturnType<typeof onPty> | null = null;
    try {
      await waitFor('the shell to wait', () => original.out().includes('waiting'));
      const a = take('root', pod, img('a'), ['--incremental']);
      original.term.write('\r');
      await waitFor('the program to run', () => ticks(original.out()).length >= 2);
      const b = take('root', pod, img('b'), ['--incremental', '--parent', a.id]);
      expect(Number(/kept_pages=(\d+)/.exec(b.out)![1])).toBe(0); // its memory is new: all of it
      await waitFor('the program to go on', () => ticks(original.out()).length >= 4);
      const c = take('root', pod, img('c'), ['--incremental', '--parent', b.id]);
      await waitFor('the program to go on', () => ticks(original.out()).length >= 6);
      const ended = new Promise<void>((r) => original.term.onExit(() => r()));
      const d = take('root', pod, img('d'), ['--incremental', '--parent', c.id, '--stop']);
      // Followed again: most of its 4096 pages come from the images before.
      expect(Number(/kept_pages=(\d+)/.exec(d.out)![1]), c.out + d.out).toBeGreaterThan(3000);
      await ended;
      const restore = `${INIT} restore --control ${join(dir, 'exec-copy.sock')} --image ${img('d')} --parent ${img('c')} --parent ${img('b')} --parent ${img('a')}`;
      copy = onPty(restore.split(' '));
      await checksOn(copy, original.out());
    } finally {
      original.term.kill('SIGKILL');
      copy?.term.kill('SIGKILL');
    }
  }, 90_000);

  it('advice given to whole areas since the previous image (their list unchanged, only their flags) is in the incremental image', async () => {
    // An incremental image describes the areas from smaps read before the freeze when
    // /proc/PID/maps shows the same areas then: advice changes only the flags, which maps does
    // not show, so the read must be this checkpoint's, not the previous one's.
    const pod = join(dir, 'advice.sock');
    const img = (n: string): string => join(dir, `advice-${n}.img`);
    const original = onPty([INIT, 'launch', '--control', pod, '--runtime', LIB, '--', join(dir, 'advice'), 'late']);
    let copy: ReturnType<typeof onPty> | null = null;
    try {
      await waitFor('the program to run', () => original.out().includes('ready'));
      const a = take('root', pod, img('a'), ['--incremental']);
      original.term.write('advise\r');
      await waitFor('the advice', () => original.out().includes('advised'));
      const ended = new Promise<void>((r) => original.term.onExit(() => r()));
      const b = take('root', pod, img('b'), ['--incremental', '--parent', a.id, '--stop']);
      expect(b.incremental, b.out).toBe(true);
      await ended;
      const restore = `${INIT} restore --control ${join(dir, 'advice-copy.sock')} --image ${img('b')} --parent ${img('a')}`;
      copy = onPty(restore.split(' '));
      // Asked again until it answers: a line typed before the restore is done may be dropped.
      let asked = 0;
      await waitFor('the copy to report', () => {
        if (Date.now() - asked > 500) {
          copy!.term.write('\r');
          asked = Date.now();
        }
        return /^dontdump: .*$/m.test(copy!.out().replace(/\r/g, '')) || /vos: /.test(copy!.out());
      }, 20_000);
      const s = copy.out().replace(/\r/g, '');
      expect(s).toMatch(/^huge: flag=1 child=data data=kept$/m);
      expect(s).toMatch(/^nohuge: flag=1 child=data data=kept$/m);
      expect(s).toMatch(/^dontfork: flag=1 child=absent data=kept$/m);
      expect(s).toMatch(/^wipe: flag=1 child=zero data=kept$/m);
      expect(s).toMatch(/^dontdump: flag=1 child=data data=kept$/m);
    } finally {
      original.term.kill('SIGKILL');
      copy?.term.kill('SIGKILL');
    }
  }, 90_000);

  it('a whole image, saying why, where tracking is unavailable, was lost to a migration, or the parent is not the last image; every 8th is whole', async () => {
    const run = async (env: Record<string, string>, tag: string, body: (pod: string) => Promise<void>): Promise<void> => {
      const pod = join(dir, `${tag}.sock`);
      const p = onPty([INIT, 'launch', '--control', pod, '--runtime', LIB, '--', join(dir, 'counter'), '50'], env);
      try {
        await waitFor('the program to run', () => /count=3/.test(p.out()));
        await body(pod);
      } finally {
        p.term.kill('SIGKILL');
      }
    };
    const img = join(dir, 'lost.img');
    await run({ VOS_TEST_NO_DIRTY_TRACKING: '1' }, 'untracked', async (pod) => {
      const a = take('root', pod, img, ['--incremental']);
      const b = take('root', pod, img, ['--incremental', '--parent', a.id]);
      expect(b.incremental).toBe(false);
      expect(b.fullReason).toMatch(/dirty-page tracking is turned off/);
    });
    await run({}, 'lost', async (pod) => {
      const a = take('root', pod, img, ['--incremental']);
      // A migration's pre-copy replaces the tracking: the next one is whole.
      const m = spawnSync('sh', ['-c', `exec "$@" 3>${join(dir, 'precopy.img')}`, 'sh', INIT, 'checkpoint', '--control', pod, '--precopy'], { encoding: 'utf8' });
      expect(m.status, m.stdout + m.stderr).toBe(0);
      const b = take('root', pod, img, ['--incremental', '--parent', a.id]);
      expect(b.incremental).toBe(false);
      expect(b.fullReason).toMatch(/a live migration was tried since the previous checkpoint/);
      // Named a parent that is not the last image tracking started from (one in between was not kept).
      const c = take('root', pod, img, ['--incremental', '--parent', b.id]);
      expect(c.incremental).toBe(true);
      const d = take('root', pod, img, ['--incremental', '--parent', b.id]);
      expect(d.incremental).toBe(false);
      expect(d.fullReason).toMatch(/is not the one this session's tracking started from/);
      // A chain is at most 8 long: the 8th image after a whole one is whole again.
      let parent = d.id;
      const kinds: boolean[] = [];
      let reason: string | null = null;
      for (let i = 0; i < 8; i++) {
        const t = take('root', pod, img, ['--incremental', '--parent', parent]);
        kinds.push(t.incremental);
        reason = t.fullReason ?? reason;
        parent = t.id;
      }
      expect(kinds).toEqual([true, true, true, true, true, true, true, false]);
      expect(reason).toMatch(/a whole image every 8 checkpoints/);
    });
  }, 90_000);
});
