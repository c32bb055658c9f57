/**
 * `vos adopt PID` with a real agent: bash running under `script` in another terminal (a real pty
 * of this test), with a job, is taken over into a session (runtime/init/adopt.c): typed into
 * through vOS, its job still there, the old terminal told where it went; it outlives an agent
 * restart like any session, and is checkpointed (stopped from outside) and restored into a pod
 * with a fresh pid namespace, keeping its pids. Refused up front: another user's process, a
 * set-user-ID program, and kernel.yama.ptrace_scope 1 and 3 (the check's test hook stands in
 * for the setting); `sudo vos adopt` (root grants, the user adopts). As root the set runs as
 * root and as nobody.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import pty from '@lydell/node-pty';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src-main/api/client.js';
import type { SessionInfo } from '../../src-main/api/protocol.js';
import { UNPRIVILEGED, startDaemon, vos, waitFor, type DaemonHandle } from '../helpers/agent-process.js';
import { runAsUsers } from '../helpers/test-programs.js';

const runAs = runAsUsers('adopt tests');

/** A program on a terminal of its own (this test's pty), as `user`. */
function onTerminal(cmd: string[], user: typeof UNPRIVILEGED | null, env: Record<string, string>): { term: pty.IPty; out: () => string } {
  const asUser = user ? ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups'] : [];
  const full = [...asUser, ...cmd];
  const term = pty.spawn(full[0]!, full.slice(1), { cols: 80, rows: 24, env: { ...(process.env as Record<string, string>), ...env } });
  let out = '';
  term.onData((d) => (out += d));
  return { term, out: () => out };
}

describe.each(runAs)('vos adopt (as $who)', ({ user }) => {
  let agent: DaemonHandle;
  let client: ApiClient;

  beforeAll(async () => {
    agent = await startDaemon(user ? { asUser: user } : {});
    client = await agent.connect();
  });

  afterAll(async () => {
    await agent?.stop();
  });

  const screen = async (id: string): Promise<string> => (await client.request('session.screen', { id })).lines.join('\n');

  it('takes bash under script over, with its job: typed into through vOS, the old terminal told where it went; checkpointed from outside and restored into a pod with its pids', async () => {
    // A job only this test runs, to find and end it by its command line.
    const job = `sleep ${900000 + (user ? 1 : 0)}`;
    const old = onTerminal(['script', '-qfc', 'exec env PS1="old$ " bash --norc --noprofile', '/dev/null'], user, { PS1: 'old$ ', HOME: agent.home });
    try {
      await waitFor('the old terminal to show its prompt', () => /old\$ $/.test(old.out()));
      old.term.write(`${job} &\r`);
      await waitFor('the job to start', () => /\[1\] \d+/.test(old.out()));
      const bash = Number(execFileSync('pgrep', ['-P', String(old.term.pid), '-x', 'bash'], { encoding: 'utf8' }).trim());

      const started = performance.now();
      const r = await vos(agent.home, ['adopt', String(bash), '--json']);
      const took = performance.now() - started;
      expect(r.code, r.stderr).toBe(0);
      const session = JSON.parse(r.stdout) as SessionInfo;
      expect(session.name).toBe('bash');
      expect(session.cannotCheckpoint).toBeNull();
      await waitFor('the old terminal to say where it went', () => old.out().includes(`[vOS] this program moved to vOS: \`vos attach ${session.id}\` shows it`));
      console.log(`adopted bash and its job in ${took.toFixed(0)} ms (vos adopt, from the command to its answer)`);

      // Typed into through vOS: bash answers on the session's terminal, its job listed.
      await client.request('session.input', { id: session.id, data: 'echo adopted-$((6*7)); jobs\r' });
      await waitFor('bash to answer in the session', async () => /^adopted-42$/m.test(await screen(session.id)));
      await waitFor('its job listed', async () => new RegExp(`Running\\s+${job} &`).test(await screen(session.id)));
      // Typed once, echoed once (its line editor's terminal modes came along).
      expect((await screen(session.id)).match(/echo adopted-/g)).toHaveLength(1);
      // Resized through vOS: bash sees the session's size.
      await client.request('session.resize', { id: session.id, cols: 111, rows: 33 });
      await client.request('session.input', { id: session.id, data: 'echo size-$(stty size)\r' });
      await waitFor('the new size', async () => /^size-33 111$/m.test(await screen(session.id)));

      // The session outlives the agent.
      await agent.stop({ keepHome: true });
      agent = await startDaemon({ home: agent.home, ...(user ? { asUser: user } : {}) });
      client = await agent.connect();
      const again = (await client.request('session.list', {})).find((s) => s.id === session.id);
      expect(again?.state).toBe('running');
      await client.request('session.input', { id: session.id, data: 'echo still-$((6*7))\r' });
      await waitFor('bash to answer after the restart', async () => /^still-42$/m.test(await screen(session.id)));

      // Checkpointed from outside (no runtime in it), ended, and restored into a pod with a
      // fresh pid namespace: bash and its job go on, with the same pids.
      await client.request('session.input', { id: session.id, data: 'echo pid-$$\r' });
      await waitFor('its pid', async () => /^pid-\d+$/m.test(await screen(session.id)));
      const pid = Number(/^pid-(\d+)$/m.exec(await screen(session.id))![1]);
      expect(pid).toBe(bash);
      const file = `${agent.home}/adopted.vosimg`;
      const cp = await vos(agent.home, ['checkpoint', session.id, '--out', file, '--stop', '--json']);
      expect(cp.code, cp.stderr).toBe(0);
      const result = JSON.parse(cp.stdout) as { processes: number; stoppedFromOutside: string[] };
      expect(result.processes).toBe(2);
      expect(result.stoppedFromOutside).toEqual([`process ${bash} (bash): started without the vOS runtime`, expect.stringMatching(/\(sleep\): started without the vOS runtime$/)]);
      await waitFor('the adopted session to end', async () => (await client.request('session.list', {})).find((s) => s.id === session.id)?.state === 'exited');
      const restored = await vos(agent.home, ['restore', file, '--json']);
      expect(restored.code, restored.stderr).toBe(0);
      const rid = (JSON.parse(restored.stdout) as { id: string }).id;
      await client.request('session.input', { id: rid, data: 'echo again-$$-$((6*7)); jobs\r' });
      await waitFor('bash to answer in the restored session, with its pid', async () => new RegExp(`^again-${bash}-42$`, 'm').test(await screen(rid)));
      await waitFor('its job there', async () => new RegExp(`Running\\s+${job} &`).test(await screen(rid)));
      await client.request('session.kill', { id: rid, signal: 'KILL' });
    } finally {
      old.term.kill('SIGKILL');
      try {
        execFileSync('pkill', ['-KILL', '-x', '-f', job]);
      } catch {
        /* gone */
      }
    }
  });

  it.runIf(user !== null)('sudo vos adopt: root only grants the ptrace exceptions, then the user\'s agent adopts it as the user; no root process stays', async () => {
    const job = 'sleep 900040';
    const old = onTerminal(['script', '-qfc', 'exec env PS1="sudo$ " bash --norc --noprofile', '/dev/null'], user, {});
    try {
      await waitFor('the old terminal to show its prompt', () => /sudo\$ $/.test(old.out()));
      old.term.write(`${job} &\r`);
      await waitFor('the job to start', () => /\[1\] \d+/.test(old.out()));
      const bash = Number(execFileSync('pgrep', ['-P', String(old.term.pid), '-x', 'bash'], { encoding: 'utf8' }).trim());
      // As sudo runs it: root, with the invoking user in SUDO_UID and SUDO_GID.
      const r = await vos(agent.home, ['adopt', String(bash), '--json'], { SUDO_UID: String(user!.uid), SUDO_GID: String(user!.gid), HOME: '/root' });
      expect(r.code, r.stderr).toBe(0);
      const session = JSON.parse(r.stdout) as SessionInfo;
      await client.request('session.input', { id: session.id, data: 'echo sudo-$((6*7))\r' });
      await waitFor('bash to answer in the session', async () => /^sudo-42$/m.test(await screen(session.id)));
      // Its stand-in is the user's, and nothing of the adoption runs as root.
      const standIn = execFileSync('ps', ['-o', 'uid=,args=', '-C', 'vos-init'], { encoding: 'utf8' });
      expect(standIn).toMatch(new RegExp(`^\\s*${user!.uid} .*adopt --pid ${bash}`, 'm'));
      expect(standIn).not.toMatch(/adopt-grant/);
      expect(standIn).not.toMatch(new RegExp(`^\\s*0 .*adopt --pid ${bash}`, 'm'));
      // Another user's process is refused by root's part too.
      const theirs = await vos(agent.home, ['adopt', String(process.pid)], { SUDO_UID: String(user!.uid), SUDO_GID: String(user!.gid) });
      expect(theirs.code).toBe(1);
      expect(theirs.stderr).toMatch(/belongs to another user \(uid 0\)/);
      await client.request('session.kill', { id: session.id, signal: 'KILL' });
    } finally {
      old.term.kill('SIGKILL');
      try {
        execFileSync('pkill', ['-KILL', '-x', '-f', job]);
      } catch {
        /* gone */
      }
    }
  });

  it.runIf(user !== null)('refuses a set-user-ID program, before touching it', async () => {
    // The user's own copy of sleep, set-user-ID: as it runs, its ids are the user's all the same.
    const dir = mkdtempSync('/tmp/vos-suid-');
    const suid = join(dir, 'suid-sleep');
    chmodSync(dir, 0o755);
    copyFileSync('/bin/sleep', suid);
    chownSync(suid, user!.uid, user!.gid);
    chmodSync(suid, 0o4755);
    const old = onTerminal([suid, '900020'], user, {});
    try {
      const pid = await waitFor('it to run', () => {
        try {
          return Number(execFileSync('pgrep', ['-x', '-f', `${suid} 900020`], { encoding: 'utf8' }).trim()) || null;
        } catch {
          return null;
        }
      });
      const r = await vos(agent.home, ['adopt', String(pid)]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/runs .*suid-sleep, a set-user-ID program, which cannot be adopted/);
    } finally {
      old.term.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.runIf(user !== null)("refuses another user's process, before touching it", async () => {
    const r = await vos(agent.home, ['adopt', String(process.pid)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/belongs to another user \(uid 0\): only your own programs can be adopted/);
    expect((await client.request('session.list', {})).filter((s) => s.state === 'running')).toEqual([]);
  });
});

describe("vos adopt where the kernel's ptrace rules forbid it", () => {
  for (const [scope, words] of [
    ['1', /kernel\.yama\.ptrace_scope is 1 on this machine \(Ubuntu's default\): only a program's parents may take it over; `sudo vos adopt PID` lets vOS take this one over/],
    ['3', /kernel\.yama\.ptrace_scope is 3 on this machine: no program can be taken over by another/],
  ] as const) {
    it(`ptrace_scope ${scope}: refused with what to change; the program runs on where it was`, async () => {
      // As an ordinary user where the test can (root may trace anything at 1 and 2).
      const d = await startDaemon({ env: { VOS_TEST_PTRACE_SCOPE: scope }, ...(process.getuid?.() === 0 ? { asUser: UNPRIVILEGED } : {}) });
      const user = process.getuid?.() === 0 ? UNPRIVILEGED : null;
      const old = onTerminal(['sh', '-c', 'while :; do echo "tick $i"; i=$((i+1)); sleep 0.1; done'], user, {});
      try {
        await waitFor('it to run', () => /tick 3/.test(old.out()));
        const r = await vos(d.home, ['adopt', String(old.term.pid)]);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(words);
        const at = old.out().length;
        await waitFor('it to run on there', () => /tick \d+/.test(old.out().slice(at)));
      } finally {
        old.term.kill('SIGKILL');
        await d.stop();
      }
    });
  }
});
