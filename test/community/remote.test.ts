/**
 * Sessions across machines: a paired machine's sessions listed live, a remote attach where
 * typing on B reaches the program on A and its output comes back (through the API and through
 * `vos attach` on a real terminal), and a link that heals by itself after the cable is pulled.
 * Real agents on simulated hosts (network namespaces); root only.
 */
import pty from '@lydell/node-pty';
import { describe, expect, it } from 'vitest';
import type { ApiEvent, SessionInfo } from '../../src-main/api/protocol.js';
import { VOS, waitFor } from '../helpers/agent-process.js';
import { FAST_LINKS, SimLab, multiHostSkipReason, pairAgents, type HostAgent } from '../helpers/community.js';

const unavailable = multiHostSkipReason('test/community/remote.test.ts');

describe.skipIf(unavailable !== null)('sessions of paired machines', () => {
  const lab = new SimLab();

  const pairedPair = (env: NodeJS.ProcessEnv = {}): Promise<[HostAgent, HostAgent]> => lab.pairedAgents({ env }, { env });

  it('lists a peer\'s sessions live and attaches to one: typing on B reaches A, output comes back', async () => {
    const [a, b] = await pairedPair();
    const onB = await b.connect();
    const events: ApiEvent[] = [];
    onB.onEvent((e) => events.push(e));
    const before = await onB.request('session.watch', { all: true });
    expect(before).toEqual([]);

    const onA = await a.connect();
    const env = { ...(process.env as Record<string, string>), PS1: 'alpha$ ' };
    const created = await onA.request('session.create', { command: 'bash', args: ['--norc', '--noprofile'], env, name: 'work' });
    await onA.request('session.wait', { id: created.id, pattern: '^alpha\\$', timeoutMs: 10_000 });

    // B hears of it, as a session of alpha.
    const added = await waitFor('B to hear of the new session', () =>
      events.find((e): e is Extract<ApiEvent, { event: 'session.added' }> => e.event === 'session.added' && e.session.name === 'work'),
    );
    const remote: SessionInfo = added.session;
    expect(remote.peer?.name).toBe('alpha');
    expect(remote.id).toBe(`${created.id}@${remote.peer!.id}`);
    const listed = await onB.request('session.list', { all: true });
    expect(listed.map((s) => s.id)).toEqual([remote.id]);
    expect((await onB.request('session.list', {})).length).toBe(0); // B's own: none

    // Attach from B by the name a person types; the snapshot shows A's screen.
    const { session, snapshot } = await onB.request('session.attach', { id: `${created.id}@alpha`, cols: 100, rows: 30 });
    expect(session.id).toBe(remote.id);
    expect(snapshot).toContain('alpha$');
    events.length = 0;
    await onB.request('session.input', { id: remote.id, data: 'echo from-beta-$((6*7))\r' });
    await waitFor('the output on B', () =>
      events.some((e) => e.event === 'session.output' && e.id === remote.id && e.data.includes('from-beta-42')),
    );
    // It ran on A, in the session's program, which took B's size as the active viewer's.
    const onAScreen = await onA.request('session.wait', { id: created.id, pattern: '^from-beta-42$', timeoutMs: 5000 });
    expect(onAScreen.cols).toBe(100);
    const screen = await b.vos(['screen', `${created.id}@alpha`]);
    expect(screen.stdout).toMatch(/^from-beta-42$/m);

    // The program ending on A reaches B's viewer.
    await onB.request('session.input', { id: remote.id, data: 'exit 3\r' });
    const exited = await waitFor('B to see the end', () =>
      events.find((e): e is Extract<ApiEvent, { event: 'session.exited' }> => e.event === 'session.exited' && e.id === remote.id),
    );
    expect(exited.session.exit?.code).toBe(3);
  }, 60_000);

  it('vos attach ID@MACHINE on a real terminal: screen, typing and the detach key', async () => {
    const [a, b] = await pairedPair();
    const id = (await a.vos(['run', '--detach', '--name', 'shell', '--', 'bash', '--norc', '--noprofile'])).stdout.trim();
    expect(id).toMatch(/^[0-9a-f]+$/);
    const ls = await b.vos(['ls', '--all']);
    expect(ls.stdout).toMatch(new RegExp(`^${id}@alpha\\s+alpha\\s+shell\\s+running`, 'm'));

    const term = pty.spawn(process.execPath, [VOS, 'attach', `${id}@alpha`], {
      cols: 90,
      rows: 25,
      env: { ...process.env, VOS_HOME: b.home } as Record<string, string>,
    });
    let out = '';
    term.onData((d) => (out += d));
    const ended = new Promise<number>((resolve) => term.onExit(({ exitCode }) => resolve(exitCode)));
    try {
      await waitFor('the remote screen', () => out.includes('bash'));
      term.write('echo typed-on-beta-$((7*6))\r');
      await waitFor('the echo', () => out.includes('typed-on-beta-42'));
      term.write('\x1c'); // the detach key
      expect(await ended).toBe(0);
    } finally {
      term.kill();
    }
    const onA = await a.vos(['screen', id]);
    expect(onA.stdout).toMatch(/^typed-on-beta-42$/m);
    // The scripting commands work across machines too.
    await b.vos(['send', `${id}@alpha`, 'echo sent-from-beta\\r']);
    const waited = await b.vos(['wait', `${id}@alpha`, '--text', '^sent-from-beta$', '--timeout', '5']);
    expect(waited.code).toBe(0);
    // What only alpha's user may do to it is refused, saying where to do it.
    const rm = await b.vos(['rm', `${id}@alpha`]);
    expect(rm.code).toBe(1);
    expect(rm.stderr).toContain(`${id}@alpha is a session of alpha: a remove is done there, by that machine's user (vos rm ${id} on alpha)`);
    const cp = await b.vos(['checkpoint', `${id}@alpha`]);
    expect(cp.code).toBe(1);
    expect(cp.stderr).toContain(`a checkpoint is done there, by that machine's user (vos checkpoint ${id} on alpha); from here you may move it home (vos migrate ${id}@alpha beta)`);
    expect((await b.vos(['kill', `${id}@alpha`, '--signal', 'KILL'])).code).toBe(0);
    await waitFor('the session on alpha to end', async () => (await a.vos(['ls'])).stdout.includes('exited (SIGKILL)'));
  }, 60_000);

  it('a machine that moves to another address stays one machine and is linked again', async () => {
    const net = lab.network(2);
    const a = await lab.agent(0, 'alpha');
    const b = await lab.agent(1, 'beta', { listenAll: true });
    await pairAgents(a, b);
    const before = (await a.peers()).find((p) => p.name === 'beta')!;
    const id = (await b.vos(['run', '--detach', '--', 'bash', '--norc', '--noprofile'])).stdout.trim();

    // beta's laptop joins another network: same machine, new address.
    const host = net.hosts[1]!;
    net.exec(host, 'ip', ['addr', 'del', `${host.address}/24`, 'dev', host.iface]);
    net.exec(host, 'ip', ['addr', 'add', '10.231.0.12/24', 'dev', host.iface]);
    net.exec(host, 'ip', ['route', 'replace', '224.0.0.0/4', 'dev', host.iface]);
    const t0 = Date.now();
    await waitFor('beta\'s session reachable again', async () => (await a.vos(['screen', `${id}@beta`])).code === 0, 40_000, 500);
    console.log(`a machine that moved was reachable again after ${Date.now() - t0} ms`);
    const moved = (await a.peers()).filter((p) => p.name === 'beta');
    expect(moved).toHaveLength(1);
    expect(moved[0]).toMatchObject({ id: before.id, paired: true, link: 'up' });
    expect(moved[0]!.addresses).toContain('10.231.0.12:47470');
  }, 90_000);

  it('a link cut by the network comes back by itself', async () => {
    const [a, b] = await pairedPair(FAST_LINKS); // the cut noticed in seconds, not tens of seconds
    const id = (await a.vos(['run', '--detach', '--', 'bash', '--norc', '--noprofile'])).stdout.trim();
    expect((await b.vos(['screen', `${id}@alpha`])).code).toBe(0);

    const net = lab.net!;
    net.cut(net.hosts[1]!);
    const t0 = Date.now();
    await b.waitPeer('alpha unreachable', (p) => p.name === 'alpha' && p.link !== 'up', 20_000);
    console.log(`the cut was noticed after ${Date.now() - t0} ms`);
    const during = await b.vos(['screen', `${id}@alpha`]);
    expect(during.code).toBe(1);
    expect(during.stderr).toMatch(/alpha is not connected right now/);

    net.restore(net.hosts[1]!);
    const t1 = Date.now();
    await b.waitPeer('alpha linked again', (p) => p.name === 'alpha' && p.link === 'up' && p.paired, 25_000);
    console.log(`the link was back ${Date.now() - t1} ms after the cable`);
    await a.waitPeer('beta linked again', (p) => p.name === 'beta' && p.link === 'up');
    const after = await b.vos(['screen', `${id}@alpha`]);
    expect(after.code).toBe(0);
    expect(after.stdout).toMatch(/bash/);
  }, 90_000);

  it('a paired machine may move a session of another only to itself: vos migrate ID@beta gamma is refused, the session stays', async () => {
    lab.network(3);
    const a = await lab.agent(0, 'alpha');
    const b = await lab.agent(1, 'beta');
    const c = await lab.agent(2, 'gamma');
    await pairAgents(a, b);
    await pairAgents(c, b);
    await a.waitPeer('gamma', (p) => p.name === 'gamma' && p.online);
    const id = (await b.vos(['run', '--detach', '--name', 'stay', '--', 'bash', '--norc', '--noprofile'])).stdout.trim();
    const refused = await a.vos(['migrate', `${id}@beta`, 'gamma']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/can be moved from here only to this machine: a paired machine may move a session only to itself\. To move it to gamma, ask on beta: vos migrate/);
    // It stays on beta, running; gamma got nothing.
    const onB = JSON.parse((await b.vos(['ls', '--json'])).stdout) as Array<{ id: string; state: string }>;
    expect(onB.find((s) => s.id === id)?.state).toBe('running');
    expect(JSON.parse((await c.vos(['ls', '--json'])).stdout)).toEqual([]);
    expect(b.log()).not.toMatch(/offers session/);
    expect(c.log()).not.toMatch(/offers session/);
  }, 90_000);

  it('vos ls --all after an unpair on one side only: it returns at once and says the machine no longer trusts this one', async () => {
    const [a, b] = await pairedPair();
    await b.vos(['run', '--detach', '--name', 'hidden', '--', 'bash', '--norc', '--noprofile']);
    expect((await a.vos(['ls', '--all'])).stdout).toMatch(/hidden/);
    // alpha is away (killed: it hears nothing) while beta unpairs it; then it comes back still
    // thinking it is paired with beta.
    await a.kill('SIGKILL');
    await b.waitPeer('alpha gone', (p) => p.name === 'alpha' && p.link !== 'up', 20_000);
    expect((await b.vos(['unpair', 'alpha'])).code).toBe(0);
    const again = await lab.agent(0, 'alpha', { home: a.home });
    await again.waitPeer('beta linked, paired here', (p) => p.name === 'beta' && p.link === 'up' && p.paired, 25_000);
    const t0 = Date.now();
    const ls = await again.vos(['ls', '--all']);
    const took = Date.now() - t0;
    expect(ls.code).toBe(0);
    expect(ls.stdout).not.toMatch(/hidden/);
    expect(ls.stdout).toMatch(/^beta: its sessions are not listed: it no longer trusts this machine \(unpaired there\)/m);
    expect(took).toBeLessThan(10_000); // a refusal, not the timeout
    const json = await again.vos(['ls', '--all', '--json']);
    expect(JSON.parse(json.stdout)).toEqual([]);
    expect(json.stderr).toMatch(/^beta: its sessions are not listed: it no longer trusts this machine/m);
  }, 90_000);
});
