/**
 * The app's agent supervisor (client/agent-supervisor.ts) with real processes: it starts the agent
 * as its own detached process or uses one already running, restarts it when it is killed (the
 * sessions, under their terminal hosts, are still there with their screens), connects windows
 * through relays that reconnect, gives up after too many restarts (and starts over on retry),
 * and "Quit and end all sessions" ends every program and the agent for good.
 */
import { readFileSync, rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src-main/api/client.js';
import type { AgentMessage } from '../../src-main/api/protocol.js';
import { statePaths } from '../../src-main/base/state-dir.js';
import { AgentRelay } from '../../src-main/client/agent-relay.js';
import { AgentSupervisor, type RestartPolicy, type SupervisorState } from '../../src-main/client/agent-supervisor.js';
import { endHosts, hostPids, startDaemon, tempHome, waitFor, processAlive as alive, type DaemonHandle } from '../helpers/agent-process.js';

const QUIET = { VOS_MDNS: '0', VOS_LISTEN: 'none' };

interface Fixture {
  home: string;
  supervisor: AgentSupervisor;
  /** Every agent pid the supervisor ran or used. */
  pids: Set<number>;
  states: SupervisorState['kind'][];
  log: string[];
}

const fixtures: Fixture[] = [];
const daemons: DaemonHandle[] = [];

afterEach(async () => {
  for (const f of fixtures.splice(0)) {
    f.supervisor.stop();
    for (const pid of f.pids) if (alive(pid)) process.kill(pid, 'SIGTERM');
    await waitFor('the agents to end', () => [...f.pids].every((p) => !alive(p)), 15_000);
    await endHosts(f.home);
    rmSync(f.home, { recursive: true, force: true });
  }
  await Promise.all(daemons.splice(0).map((d) => d.stop()));
});

function supervise(home: string, policy: Partial<RestartPolicy> = {}): Fixture {
  const log: string[] = [];
  const supervisor = new AgentSupervisor({
    paths: statePaths(home),
    clientName: 'supervisor-test',
    // As the app starts it (this Node ignores the variable; the agent must not pass it on).
    launch: { env: { ...QUIET, ELECTRON_RUN_AS_NODE: '1' } },
    policy: { firstDelayMs: 50, ...policy },
    log: (m) => log.push(m),
  });
  const f: Fixture = { home, supervisor, pids: new Set(), states: [], log };
  supervisor.onChange((s) => {
    f.states.push(s.kind);
    if (s.kind === 'running') f.pids.add(s.agent.pid);
  });
  fixtures.push(f);
  return f;
}

const runningPid = (s: AgentSupervisor): number | null => (s.state.kind === 'running' ? s.state.agent.pid : null);

/** A window's view through a relay: an API client whose transport is the relay. */
function windowClient(supervisor: AgentSupervisor): { client: ApiClient; closed: Promise<string> } {
  let deliver: (m: AgentMessage) => void = () => undefined;
  let onClose: (reason: string) => void = () => undefined;
  const closed = new Promise<string>((resolve) => (onClose = resolve));
  const relay = new AgentRelay(
    () => supervisor.openTransport(),
    (m) => {
      if (m.t === 'error' && m.error.code === 'connection_closed') onClose(m.error.message);
      deliver(m);
    },
  );
  const client = new ApiClient(
    {
      send: (m) => relay.receive(m),
      onMessage: (h) => (deliver = h),
      onClose: () => undefined,
      close: () => relay.close(),
    },
    'window',
  );
  return { client, closed };
}

describe('the agent supervisor', () => {
  it('starts the agent as its own detached process when none runs; stop() leaves it and its sessions running', async () => {
    const f = supervise(tempHome());
    const info = await f.supervisor.start();
    expect(f.supervisor.state).toMatchObject({ kind: 'running', startedHere: true });
    expect(info.pid).not.toBe(process.pid);
    // Its own process group: Ctrl-C at the app's terminal does not reach it.
    const stat = readFileSync(`/proc/${info.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    expect(Number(stat[2])).toBe(info.pid); // pgrp
    const c = f.supervisor.client!;
    // A session started from the app (no environment of its own: the agent's) does not get the
    // variable that makes Electron's binary run as Node.
    const s = await c.request('session.create', { command: 'sh', args: ['-c', 'echo "started-by-app E=[$ELECTRON_RUN_AS_NODE]"; exec cat'], name: 'kept' });
    await c.request('session.wait', { id: s.id, pattern: '^started-by-app E=\\[\\]$', timeoutMs: 10_000 });

    f.supervisor.stop();
    expect(f.supervisor.state.kind).toBe('stopped');
    expect(alive(info.pid)).toBe(true);
    expect(alive(s.pid)).toBe(true);
  });

  it('uses an agent that already runs for the state directory', async () => {
    const d = await startDaemon({ env: QUIET });
    daemons.push(d);
    const f = supervise(d.home);
    const info = await f.supervisor.start();
    expect(info.pid).toBe(d.proc.pid);
    expect(f.supervisor.state).toMatchObject({ kind: 'running', startedHere: false });
    f.supervisor.stop();
    expect(alive(d.proc.pid!)).toBe(true);
    f.pids.clear(); // the daemon's handle ends it
  });

  it('restarts the agent after kill -9; the session is still there with its screen, and windows reconnect', async () => {
    const f = supervise(tempHome());
    const first = (await f.supervisor.start()).pid;
    const win = windowClient(f.supervisor);
    await win.client.ready();
    const s = await win.client.request('session.create', { command: 'sh', args: ['-c', 'echo before-the-crash; exec cat'], name: 'survivor' });
    await win.client.request('session.wait', { id: s.id, pattern: 'before-the-crash', timeoutMs: 10_000 });
    const hosts = hostPids(f.home);
    expect(hosts.length).toBe(1);

    process.kill(first, 'SIGKILL');
    // The window is told its connection is over (it then connects again).
    expect(await win.closed).toMatch(/closed|went away/);
    const second = await waitFor('a new agent', () => {
      const pid = runningPid(f.supervisor);
      return pid !== null && pid !== first ? pid : null;
    }, 20_000);
    expect(f.states).toContain('restarting');
    expect(f.log.join('\n')).toMatch(/ended: SIGKILL; restarting it in \d+ ms/);
    expect(alive(second)).toBe(true);
    expect(alive(s.pid)).toBe(true);
    expect(hostPids(f.home)).toEqual(hosts);

    const again = windowClient(f.supervisor);
    await again.client.ready();
    const list = await again.client.request('session.list', {});
    // (Its pid may read differently now: create answers before the program's own pid is known.)
    expect(list).toMatchObject([{ id: s.id, name: 'survivor', state: 'running' }]);
    await again.client.request('session.input', { id: s.id, data: 'after-the-restart\r' });
    const screen = await again.client.request('session.wait', { id: s.id, pattern: '^after-the-restart$', timeoutMs: 10_000 });
    expect(screen.lines.join('\n')).toContain('before-the-crash');
    again.client.close();
  });

  it('a window that connects while the agent restarts waits for the new one', async () => {
    const f = supervise(tempHome(), { firstDelayMs: 600 });
    const first = (await f.supervisor.start()).pid;
    process.kill(first, 'SIGKILL');
    await waitFor('the supervisor to notice', () => f.supervisor.state.kind === 'restarting', 10_000);
    const win = windowClient(f.supervisor); // its hello waits in the relay
    const info = await win.client.ready();
    expect(info.pid).not.toBe(first);
    expect(await win.client.request('session.list', {})).toEqual([]);
    win.client.close();
  });

  it('gives up after too many restarts in the window, saying why; retry() starts over', async () => {
    const f = supervise(tempHome(), { maxRestarts: 2, windowMs: 60_000 });
    let pid = (await f.supervisor.start()).pid;
    for (let i = 0; i < 2; i++) {
      process.kill(pid, 'SIGKILL');
      const before = pid;
      pid = await waitFor(`restart ${i + 1}`, () => {
        const p = runningPid(f.supervisor);
        return p !== null && p !== before ? p : null;
      }, 20_000);
    }
    process.kill(pid, 'SIGKILL');
    await waitFor('the supervisor to give up', () => f.supervisor.state.kind === 'failed', 10_000);
    const state = f.supervisor.state as Extract<SupervisorState, { kind: 'failed' }>;
    expect(state.reason).toMatch(/stopped 3 times within 60 s and is not restarted again \(last: .*SIGKILL\); see .*agent\.log/);
    await expect(f.supervisor.whenRunning()).rejects.toThrow(/not restarted again/);
    // A window is told why (and keeps trying).
    expect(await windowClient(f.supervisor).closed).toMatch(/not restarted again/);

    f.supervisor.retry();
    const info = await f.supervisor.whenRunning(20_000);
    expect(info.pid).not.toBe(pid);
  });

  it('"Quit and end all sessions" ends every program (one ignores SIGHUP) and the agent, which is not restarted', async () => {
    const f = supervise(tempHome());
    const agentPid = (await f.supervisor.start()).pid;
    const c = f.supervisor.client!;
    const plain = await c.request('session.create', { command: 'sh', args: ['-c', 'echo plain; exec cat'], name: 'plain' });
    const stubborn = await c.request('session.create', { command: 'sh', args: ['-c', 'trap "" HUP; echo stubborn; exec sleep 1000'], name: 'stubborn' });
    const done = await c.request('session.create', { command: 'sh', args: ['-c', 'echo done-already'], name: 'done' });
    await c.request('session.wait', { id: stubborn.id, pattern: 'stubborn', timeoutMs: 10_000 });
    await waitFor('the short session to end', async () => (await c.request('session.list', {})).find((s) => s.id === done.id)?.state === 'exited');
    expect(hostPids(f.home).length).toBe(3);

    const result = await f.supervisor.endSessionsAndStopAgent();
    expect(result.failed).toEqual([]);
    expect(result.ended.sort()).toEqual([plain.id, stubborn.id].sort());
    expect(alive(agentPid)).toBe(false);
    expect(alive(plain.pid)).toBe(false);
    expect(alive(stubborn.pid)).toBe(false);
    // The session that had ended before stays listed for the next agent (its host keeps its status).
    await waitFor('the ended sessions\' hosts to go', () => hostPids(f.home).length === 1, 5000);
    expect(f.supervisor.state.kind).toBe('stopped');
    await new Promise((r) => setTimeout(r, 300)); // a restart would be under way by now (first delay 50 ms)
    expect(f.states.filter((s) => s === 'restarting')).toEqual([]);
  });
  it('"Quit and end all sessions" with "checkpoint first" leaves each session recoverable for the next agent', async () => {
    const home = tempHome();
    const f = supervise(home);
    const agentPid = (await f.supervisor.start()).pid;
    const c = f.supervisor.client!;
    const s = await c.request('session.create', { command: 'bash', args: ['--norc', '--noprofile'], name: 'keeper' });
    await c.request('session.input', { id: s.id, data: 'KEPT=value-$((6*7)); echo ready-$((1+1))\r' });
    // (Not 'ready': the typed line's echo says that before bash has run it.)
    await c.request('session.wait', { id: s.id, pattern: 'ready-2', timeoutMs: 10_000 });

    const result = await f.supervisor.endSessionsAndStopAgent(60_000, true);
    expect(result.failed).toEqual([]);
    expect(result.ended).toEqual([s.id]);
    expect(alive(agentPid)).toBe(false);
    await waitFor('the program to end', () => !alive(s.pid), 10_000);

    // The next agent lists it as recoverable; recovering brings back its memory.
    const next = supervise(home);
    await next.supervisor.start();
    const c2 = next.supervisor.client!;
    const listed = (await c2.request('session.list', {})).find((x) => x.id === s.id);
    expect(listed?.state).toBe('recoverable');
    const [back] = await c2.request('session.recover', { id: s.id });
    expect(back?.name).toBe('keeper');
    await c2.request('session.input', { id: s.id, data: 'echo got-$KEPT\r' });
    await c2.request('session.wait', { id: s.id, pattern: 'got-value-42', timeoutMs: 15_000 });
    await c2.request('session.kill', { id: s.id, signal: 'KILL' });
  });
});
