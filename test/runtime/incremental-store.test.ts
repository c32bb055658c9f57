/**
 * Incremental images in the agent's image store (`vos checkpoint --incremental`, what scheduled
 * checkpoints do): each names the previous one as its parent and is a fraction of its size; a
 * store image restores with its parents (the program checks every page of its memory); retention
 * keeps every parent a kept image needs, `vos images rm` refuses a needed parent; a missing
 * parent lists its children damaged and refuses their restore, a damaged one refuses it naming
 * the parent's file. As root the set runs as root and as an ordinary user (nobody).
 */
import { chmodSync, closeSync, existsSync, mkdtempSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src-main/api/client.js';
import type { CheckpointResult, ImageInfo } from '../../src-main/api/protocol.js';
import { UNPRIVILEGED, startDaemon, vos, type DaemonHandle } from '../helpers/agent-process.js';
import { fillTestPrograms } from '../helpers/test-programs.js';

let programs: string;

beforeAll(() => {
  programs = mkdtempSync('/tmp/vos-test-programs-');
  chmodSync(programs, 0o755);
  fillTestPrograms(programs);
});

afterAll(() => {
  rmSync(programs, { recursive: true, force: true });
});

const isRoot = process.getuid?.() === 0;
const runAs = isRoot ? [{ who: 'root', user: null }, { who: 'nobody', user: UNPRIVILEGED }] : [{ who: 'this user', user: null }];
if (!isRoot) console.log('incremental store tests run as the current user only (not root: no second user to run as)');

describe.each(runAs)('incremental images in the store (as $who)', ({ user }) => {
  let agent: DaemonHandle;
  let client: ApiClient;

  beforeAll(async () => {
    agent = await startDaemon(user ? { asUser: user } : {});
    client = await agent.connect();
  });

  afterAll(async () => {
    await agent?.stop();
  });

  async function checkpoint(id: string, extra: string[] = []): Promise<CheckpointResult> {
    const r = await vos(agent.home, ['checkpoint', id, ...extra, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout) as CheckpointResult;
  }
  async function list(session: string): Promise<ImageInfo[]> {
    const r = await vos(agent.home, ['images', session, '--json']);
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout) as ImageInfo[];
  }
  /** The screen once it shows `pattern`. */
  const screen = async (id: string, pattern: string): Promise<string> =>
    (await client.request('session.wait', { id, pattern, timeoutMs: 20_000 })).lines.join('\n');
  const lastTick = (text: string): number => Math.max(0, ...[...text.matchAll(/tick (\d+) ok/g)].map((m) => Number(m[1])));
  /**
   * The screen once it shows tick `n` or a later one (or BAD). Not a wait for "tick N ok" itself:
   * its "step" lines flood the screen, and a busy agent may match the screen only after that
   * line has scrolled away; some tick line is on every screen.
   */
  async function untilTick(id: string, n: number): Promise<string> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const text = await screen(id, 'BAD|tick \\d+ ok');
      if (text.includes('BAD') || lastTick(text) >= n) return text;
      if (Date.now() > deadline) throw new Error(`tick ${n} not reached within 20 s; the screen shows:\n${text}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  async function kill(id: string): Promise<void> {
    await client.request('session.kill', { id, signal: 'KILL' }).catch(() => {});
  }

  it('a chain restores whole; retention keeps what kept images need; a missing or damaged parent refuses the restore, naming it', async () => {
    const s = await client.request('session.create', {
      command: join(programs, 'dirtier'),
      args: ['32', '1', '10000'], // 100 pages a second: a few hundred between checkpoints
      env: { ...(process.env as Record<string, string>), HOME: agent.home },
      cwd: agent.home,
      cols: 100,
      rows: 30,
    });
    const id = s.id;
    const restored: string[] = [];
    try {
      await untilTick(id, 2);
      const manual = await checkpoint(id); // a whole image outside any chain: retention may take it
      expect(manual).toMatchObject({ incremental: false, parent: null });
      expect(manual.fullReason).toBeUndefined();
      const chain: CheckpointResult[] = [];
      for (let i = 0; i < 4; i++) chain.push(await checkpoint(id, ['--incremental', '--keep', '2']));
      const [a, b, c, d] = chain as [CheckpointResult, CheckpointResult, CheckpointResult, CheckpointResult];
      expect(a).toMatchObject({ incremental: false, parent: null });
      expect(a.fullReason).toMatch(/first checkpoint/);
      for (const [child, parent] of [[b, a], [c, b], [d, c]] as const) {
        expect(child).toMatchObject({ incremental: true, parent: parent.image });
        expect(child.bytes).toBeLessThan(a.bytes / 4);
      }
      // keep 2: the newest two and every parent they need (all of the chain, however old); the
      // manual image goes once it is neither (at b: b and a are the newest two).
      expect(chain.map((x) => x.removed)).toEqual([[], [manual.image], [], []]);
      const listed = await list(id);
      expect(listed.map((i) => [i.id, i.parent])).toEqual([
        [d.image, c.image],
        [c.image, b.image],
        [b.image, a.image],
        [a.image, null],
      ]);
      const rm = await vos(agent.home, ['images', 'rm', b.image!]);
      expect(rm.code).toBe(1);
      expect(rm.stderr).toContain(`image ${b.image} is the parent of ${c.image}`);

      // The newest, restored from its chain: every page as last written (the program checks).
      const before = lastTick(await screen(id, 'tick \\d+ ok'));
      await kill(id);
      const r1 = await vos(agent.home, ['restore', d.image!]);
      expect(r1.stderr).toBe('');
      expect(r1.code).toBe(0);
      const copy = r1.stdout.trim();
      restored.push(copy);
      // Its screen comes back with the old ticks: two more checks are the copy's own.
      const after = await untilTick(copy, before + 2);
      expect(after).not.toContain('BAD');
      expect(lastTick(after)).toBeGreaterThanOrEqual(before + 2);
      await kill(copy);

      // A damaged parent (same size, a byte changed): refused by the restorer, naming its file.
      const bFile = listed.find((i) => i.id === b.image)!.file;
      const fd = openSync(bFile, 'r+');
      const at = Math.floor(statSync(bFile).size / 2);
      const byte = Buffer.alloc(1);
      readSync(fd, byte, 0, 1, at);
      writeSync(fd, Buffer.from([byte[0]! ^ 0xff]), 0, 1, at);
      const damaged = await vos(agent.home, ['restore', d.image!]);
      expect(damaged.code).toBe(1);
      expect(damaged.stderr).toContain(`the parent image ${bFile}`);
      writeSync(fd, byte, 0, 1, at);
      closeSync(fd);

      // A missing parent: its children are listed damaged, naming it, and refused.
      renameSync(bFile, `${bFile}.away`);
      const now = await list(id);
      expect(now.find((i) => i.id === c.image)).toMatchObject({ state: 'damaged', problem: `it needs its parent image ${b.image}, which is damaged (the image file is missing)` });
      expect(now.find((i) => i.id === d.image)!.problem).toMatch(new RegExp(`^it needs its parent image ${c.image}, which is damaged`));
      expect(now.find((i) => i.id === a.image)).toMatchObject({ state: 'ok' });
      const missing = await vos(agent.home, ['restore', d.image!]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain(`needs its parent image ${c.image}`);
      renameSync(`${bFile}.away`, bFile);
      expect((await list(id)).every((i) => i.state === 'ok')).toBe(true);
      expect(existsSync(bFile)).toBe(true);
    } finally {
      for (const r of [id, ...restored]) await kill(r);
    }
  }, 120_000);
});
