/**
 * Live migration's memory copy, at the runtime's level: `vos-init checkpoint --precopy` sends a
 * running program's memory in rounds (PRECOPY records) while it keeps rewriting it, then freezes
 * it and sends only what changed (KEPT runs for the rest). The image, restored on a fresh pty,
 * must hold every page as the program last wrote it (the program checks all of them). As root
 * and as an unprivileged user; and where tracking is not possible, a plain image instead.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, createReadStream, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import pty from '@lydell/node-pty';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UNPRIVILEGED, waitFor } from '../helpers/agent-process.js';
import { RUNTIME_DIR } from '../helpers/runtime-dir.js';
import { fillTestPrograms } from '../helpers/test-programs.js';

const INIT = join(RUNTIME_DIR, 'vos-init');
const LIB = join(RUNTIME_DIR, 'libvos.so');
const isRoot = process.getuid?.() === 0;

describe('live migration pre-copy (vos-init checkpoint --precopy)', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync('/tmp/vos-precopy-');
    chmodSync(dir, 0o777);
    fillTestPrograms(dir);
    chmodSync(join(dir, 'dirtier'), 0o755);
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

  /** Serves the image on a Unix socket, as the agent does for a migration (restore --image-socket). */
  async function serveImage(image: string, path: string): Promise<Server> {
    const server = createServer((conn) => createReadStream(image).pipe(conn));
    await new Promise<void>((resolve) => server.listen(path, resolve));
    chmodSync(path, 0o777);
    return server;
  }

  /** through 'socket': as a migration's target gets it (checked while it arrives, its pages sent
   * ahead staged in memory and moved into place); 'file': as vos restore reads it. */
  async function moveThroughAnImage(user: 'root' | 'nobody', env: Record<string, string>, through: 'file' | 'socket'): Promise<string> {
    const tag = `${user}-${Object.keys(env).length}`;
    const pod = join(dir, `${tag}.sock`);
    const image = join(dir, `${tag}.img`);
    // 32 MiB, 20 random pages rewritten every 1 ms (about 80 MB/s): the pod writes between the
    // last round and the freeze, whatever their timing.
    const original = onPty([...asUser(user), INIT, 'launch', '--control', pod, '--runtime', LIB, '--', join(dir, 'dirtier'), '32', '20', '1000'], env);
    let copy: ReturnType<typeof onPty> | null = null;
    let server: Server | null = null;
    try {
      await waitFor('the program to run', () => ticks(original.out()).length >= 2);
      // --stop: the original ends where the image was taken, so its last words are the witness.
      const ended = new Promise<void>((r) => original.term.onExit(() => r()));
      const cp = spawnSync('sh', ['-c', `exec "$@" 3>${image}`, 'sh', ...asUser(user), INIT, 'checkpoint', '--control', pod, '--precopy', '--stop'], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(cp.status, cp.stdout + cp.stderr).toBe(0);
      await ended;
      const last = Math.max(...ticks(original.out()));
      const lastStep = Math.max(...steps(original.out()));
      expect(statSync(image).size).toBeGreaterThan(32 << 20);
      // The restorer reopens its terminal: it must be the user's own (script(1) makes one).
      const source = through === 'file' ? `--image ${image}` : `--image-socket ${join(dir, `${tag}-image.sock`)}`;
      if (through === 'socket') server = await serveImage(image, join(dir, `${tag}-image.sock`));
      const restore = `${INIT} restore --control ${join(dir, `${tag}-copy.sock`)} ${source}`;
      // exec: the restorer must lead the terminal's session (script's shell may be dash, which forks).
      copy = onPty(user === 'nobody' ? [...asUser(user), 'script', '-qfec', `exec ${restore}`, '/dev/null'] : restore.split(' '));
      await waitFor('the copy to check its memory, several times', () => ticks(copy!.out()).filter((n) => n > last).length >= 3 || /vos: /.test(copy!.out()), 20_000);
      expect(copy.out()).not.toMatch(/vos: /); // the restorer's complaint
      expect(copy.out()).not.toContain('BAD');
      // It goes on exactly from where the image was taken: memory older than that (a page kept
      // from a round although written since) would repeat a step.
      expect(steps(copy.out())[0]).toBe(lastStep + 1);
      return cp.stdout;
    } finally {
      original.term.kill('SIGKILL');
      copy?.term.kill('SIGKILL');
      server?.close();
    }
  }

  for (const [user, through] of isRoot
    ? ([['root', 'file'], ['nobody', 'socket']] as const)
    : ([['root', 'file'], ['root', 'socket']] as const)) {
    it(`sends the memory in rounds while the program rewrites it; the copy restored from a ${through} has every page (${user === 'root' ? 'this user' : 'as nobody'})`, async () => {
      const out = await moveThroughAnImage(user, {}, through);
      const rounds = [...out.matchAll(/^precopy round=(\d+) pages=(\d+)/gm)].map((m) => ({ round: Number(m[1]), pages: Number(m[2]) }));
      expect(rounds.length).toBeGreaterThanOrEqual(2);
      expect(rounds[0]!.pages).toBeGreaterThanOrEqual(8192); // the first round: all 32 MiB
      const ok = /^ok .*kept_pages=(\d+)/m.exec(out);
      expect(ok, out).not.toBeNull();
      expect(Number(ok![1])).toBeGreaterThan(4096); // most pages were not sent again while frozen
    }, 60_000);
  }

  it('a received image damaged in its memory, past pages already put in place, is refused naming the record; nothing of it runs', async () => {
    const pod = join(dir, 'damaged.sock');
    const image = join(dir, 'damaged.img');
    const original = onPty([INIT, 'launch', '--control', pod, '--runtime', LIB, '--', join(dir, 'dirtier'), '32', '20', '1000']);
    let copy: ReturnType<typeof onPty> | null = null;
    let server: Server | null = null;
    try {
      await waitFor('the program to run', () => ticks(original.out()).length >= 2);
      const cp = spawnSync('sh', ['-c', `exec "$@" 3>${image}`, 'sh', INIT, 'checkpoint', '--control', pod, '--stop'], { encoding: 'utf8', timeout: 60_000 });
      expect(cp.status, cp.stdout + cp.stderr).toBe(0);
      // One byte of page data three quarters in: the PAGES records before it are staged as
      // they arrive, this one fails its checksum.
      const bytes = readFileSync(image);
      bytes[Math.floor(bytes.length * 0.75)]! ^= 0x55;
      writeFileSync(image, bytes);
      server = await serveImage(image, join(dir, 'damaged-image.sock'));
      copy = onPty([INIT, 'restore', '--control', join(dir, 'damaged-copy.sock'), '--image-socket', join(dir, 'damaged-image.sock')]);
      const ended = new Promise<number>((r) => copy!.term.onExit((x) => r(x.exitCode)));
      expect(await ended).not.toBe(0);
      expect(copy.out(), copy.out()).toMatch(/vos: restore failed: .*the pages record at byte \d+ fails its checksum/);
      expect(ticks(copy.out())).toEqual([]);
    } finally {
      original.term.kill('SIGKILL');
      copy?.term.kill('SIGKILL');
      server?.close();
    }
  }, 60_000);

  it('says why and writes a plain image where written pages cannot be tracked', async () => {
    const out = await moveThroughAnImage('root', { VOS_TEST_NO_DIRTY_TRACKING: '1' }, 'socket');
    expect(out).toMatch(/^precopy unavailable .*VOS_TEST_NO_DIRTY_TRACKING/m);
    expect(out).not.toMatch(/^precopy round=/m);
    expect(out).toMatch(/^ok .*kept_pages=0 /m);
  }, 60_000);
});
