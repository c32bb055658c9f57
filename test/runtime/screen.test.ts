/**
 * GNU screen in a pod (issue 11 item 7): as root it gives its pty to group tty, which the pod
 * must map (root's pod maps every id to itself); as an ordinary user the chown is refused and
 * screen goes on, as it does outside. It starts, runs a command, and is checkpointed and
 * restored: the window's shell answers again. As root and as an ordinary user.
 */
import { existsSync, mkdirSync, chownSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src-main/api/client.js';
import { UNPRIVILEGED, startDaemon, vos, waitFor, type DaemonHandle } from '../helpers/agent-process.js';

const SCREEN = '/usr/bin/screen';
const runAs = process.getuid?.() === 0 ? [{ who: 'root', user: null }, { who: 'nobody', user: UNPRIVILEGED }] : [{ who: 'this user', user: null }];

if (!existsSync(SCREEN)) console.log(`GNU screen tests skipped: ${SCREEN} is not installed (.ci/run installs it)`);
describe.skipIf(!existsSync(SCREEN)).each(runAs)('GNU screen in a pod (as $who)', ({ user }) => {
  let agent: DaemonHandle;
  let client: ApiClient;
  let screenDir: string;

  beforeAll(async () => {
    agent = await startDaemon(user ? { asUser: user } : {});
    client = await agent.connect();
    screenDir = join(agent.home, 'screens');
    mkdirSync(screenDir, { mode: 0o700 });
    if (user) chownSync(screenDir, user.uid, user.gid);
  });

  afterAll(async () => {
    await agent?.stop();
  });

  const env = (): Record<string, string> => ({
    ...(process.env as Record<string, string>),
    HOME: agent.home,
    TERM: 'xterm-256color',
    SCREENDIR: screenDir,
    SCREENRC: '/dev/null',
    SYSSCREENRC: '/dev/null',
    PS1: 'in-screen$ ',
  });
  const send = (id: string, data: string): Promise<unknown> => client.request('session.input', { id, data });
  const waitText = (id: string, pattern: string, timeoutMs = 10_000): Promise<{ lines: string[] }> =>
    client.request('session.wait', { id, pattern, timeoutMs });
  const screenText = async (id: string): Promise<string> => (await client.request('session.screen', { id })).lines.join('\n');

  async function startScreen(): Promise<string> {
    const s = await client.request('session.create', {
      command: SCREEN,
      args: ['-S', 'vt', '-s', '/bin/sh'],
      env: env(),
      cwd: agent.home,
      cols: 100,
      rows: 30,
    });
    // Typed only once the window's shell prompts: what comes before screen took the terminal is lost.
    await waitText(s.id, '^in-screen\\$', 15_000);
    return s.id;
  }

  const killed = async (id: string): Promise<void> => {
    await client.request('session.kill', { id, signal: 'KILL' }).catch(() => undefined);
    await waitFor('the session to end', async () => (await client.request('session.list', {})).find((x) => x.id === id)?.state !== 'running');
  };

  it('starts (its pty given to group tty where the user may) and runs a command in its window', async () => {
    const id = await startScreen();
    try {
      await send(id, 'echo hello-$((6*7))\r');
      await waitText(id, '^hello-42$');
      expect(await screenText(id)).not.toMatch(/chown tty|could not find a PTY/);
    } finally {
      await killed(id);
    }
  });

  // Root's pod maps every id, so a process there can become another user; the image has no user
  // per process, and restoring it as root would give it back root's rights: refused, saying why.
  it.runIf(user === null && process.getuid?.() === 0)('a process that became another user in root\'s pod is refused at checkpoint', async () => {
    const s = await client.request('session.create', {
      command: '/bin/sh',
      args: ['-c', "setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'echo as-$(id -u); exec sleep 600'; echo ended"],
      env: env(),
      cwd: agent.home,
      cols: 100,
      rows: 30,
    });
    try {
      await waitText(s.id, '^as-65534$');
      const cp = await vos(agent.home, ['checkpoint', s.id, '--out', join(agent.home, 'other-user.vosimg')]);
      expect(cp.code).not.toBe(0);
      expect(cp.stderr).toMatch(/runs as another user or group \(Uid 65534/);
    } finally {
      await killed(s.id);
    }
  });

  // Its server's listening socket comes back listening (before: "accept: Invalid argument", and
  // it spun), and its windows' pty masters in packet mode (before: the first byte of every read
  // was taken for the packet header, "echo again" showed as "cho again").
  it('does so again after checkpoint and restore', async () => {
    const id = await startScreen();
    try {
      await send(id, 'echo hello-$((6*7))\r');
      await waitText(id, '^hello-42$');
      const file = join(agent.home, 'screen.vosimg');
      const cp = await vos(agent.home, ['checkpoint', id, '--out', file, '--json']);
      expect(cp.stderr).toBe('');
      expect(cp.code).toBe(0);
      await killed(id);
      const restored = await client.request('session.restore', { file });
      try {
        await send(restored.id, 'echo again-$((7*8))\r');
        await waitText(restored.id, '^again-56$');
        expect(await screenText(restored.id)).not.toMatch(/accept:/);
      } finally {
        await killed(restored.id);
      }
    } finally {
      await killed(id);
    }
  });
});
