/**
 * A restore's result is exact: the program ran (and the session shows how it ended), or nothing
 * of it ran. A program that does its one job and exits right after the restore is the hard case:
 * its pod may be gone before the agent has heard that the restore succeeded. Real agent, real
 * ptys, the restore repeated many times.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src-main/api/client.js';
import { VosError } from '../../src-main/api/errors.js';
import { ROOT, UNPRIVILEGED, startDaemon, vos, waitFor, type DaemonHandle } from '../helpers/agent-process.js';
import { fillTestPrograms } from '../helpers/test-programs.js';

const runtimeBuilt = existsSync(join(ROOT, 'out', 'runtime', 'vos-init'));

const users = process.getuid?.() === 0 ? (['root', 'nobody'] as const) : (['self'] as const);

describe.skipIf(!runtimeBuilt).each(users)('a restore of a program that ends at once (as %s)', (user) => {
  let programs: string;
  let agent: DaemonHandle;
  let client: ApiClient;
  beforeAll(async () => {
    programs = mkdtempSync('/tmp/vos-programs-');
    chmodSync(programs, 0o755);
    fillTestPrograms(programs);
    agent = await startDaemon({ env: { VOS_MDNS: '0', VOS_LISTEN: 'none' }, ...(user === 'nobody' ? { asUser: UNPRIVILEGED } : {}) });
    client = await agent.connect();
  });
  afterAll(async () => {
    await agent?.stop();
    rmSync(programs, { recursive: true, force: true });
  });

  it('reports every restore as run, with the exit status, and each ran exactly once', async () => {
    const trigger = join(agent.home, 'go');
    const out = join(agent.home, 'ran.txt');
    const image = join(agent.home, 'once.vosimg');
    const s = await client.request('session.create', { command: join(programs, 'once'), args: [trigger, out, '7'], cwd: agent.home });
    await client.request('session.wait', { id: s.id, pattern: 'waiting', timeoutMs: 10_000 });
    await client.request('session.checkpoint', { id: s.id, out: image, stop: true });
    await waitFor('the original to end', async () => (await client.request('session.list', {})).find((x) => x.id === s.id)?.state === 'exited');
    writeFileSync(trigger, '');
    const ROUNDS = 25;
    const failures: string[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      try {
        // Some as a user types it (vos restore), the others through the API.
        let id: string;
        if (i % 5 === 0) {
          const cli = await vos(agent.home, ['restore', image]);
          expect(cli.stderr).toBe('');
          expect(cli.code).toBe(0);
          id = cli.stdout.trim();
        } else {
          id = (await client.request('session.restore', { file: image })).id;
        }
        const r = { id };
        const ended = await waitFor(`restore ${i} to end`, async () => {
          const found = (await client.request('session.list', {})).find((x) => x.id === r.id);
          return found?.state === 'exited' ? found : null;
        });
        expect(ended.exit).toEqual({ code: 7, signal: null });
      } catch (err) {
        failures.push(`round ${i}: ${(err as Error).message}`);
      }
      const lines = readFileSync(out, 'utf8').split('\n').filter(Boolean);
      expect({ round: i, lines: lines.length, failures }).toEqual({ round: i, lines: i + 1, failures: [] });
    }
  }, 240_000);

  it('a restore that cannot run says why, with the path, and nothing of the program ran', async () => {
    const cwd = join(agent.home, 'gone-later');
    mkdirSync(cwd);
    chmodSync(cwd, 0o777);
    const trigger = join(agent.home, 'go-cwd');
    const out = join(agent.home, 'ran-cwd.txt');
    const image = join(agent.home, 'cwd.vosimg');
    // The saved screen carries words that look like a restorer's.
    const s = await client.request('session.create', {
      command: 'sh',
      args: ['-c', 'echo "vos: restore failed: words on the screen"; exec "$0" "$@"', join(programs, 'once'), trigger, out, '7'],
      cwd,
    });
    await client.request('session.wait', { id: s.id, pattern: 'waiting', timeoutMs: 10_000 });
    await client.request('session.checkpoint', { id: s.id, out: image, stop: true });
    await waitFor('the original to end', async () => (await client.request('session.list', {})).find((x) => x.id === s.id)?.state === 'exited');
    rmdirSync(cwd);
    writeFileSync(trigger, '');
    const before = (await client.request('session.list', {})).length;
    const e = await client.request('session.restore', { file: image }).then(() => null, (err: unknown) => err);
    expect(e).toBeInstanceOf(VosError);
    expect((e as VosError).details.path).toBe(cwd);
    expect((e as VosError).message).toBe(`cannot restore ${image}: process ${(e as VosError).message.match(/process (\d+)/)?.[1]} (once): its working directory ${cwd} is missing here: No such file or directory`);
    expect((e as VosError).message).not.toContain('words on the screen');
    expect((await client.request('session.list', {})).length).toBe(before);
    expect(existsSync(out)).toBe(false);
  });
});
