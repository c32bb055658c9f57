/**
 * Pairing between real agents on simulated hosts: both users confirm the code (the side asked
 * accepts it, the side that asked confirms the other shows the same), in either order, and
 * both remember it across a restart; a wrong code is refused; the asking user declining pairs
 * neither side; a machine in the middle that answers a request with an acceptance is not
 * trusted; an unpaired machine can do nothing but ask, an impostor (new key, same name) is
 * refused, and unpairing forgets on both sides. Root only.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, VOS, waitFor } from '../helpers/agent-process.js';
import { PEER_PORT, SimLab, multiHostSkipReason, pairAgents, type HostAgent } from '../helpers/community.js';

const unavailable = multiHostSkipReason('test/community/pairing.test.ts');

describe.skipIf(unavailable !== null)('pairing', () => {
  const lab = new SimLab();

  async function two(): Promise<[HostAgent, HostAgent]> {
    lab.network(2);
    return [await lab.agent(0, 'm1'), await lab.agent(1, 'm2')];
  }

  it('pairs with the code both sides show, and both remember it across a restart', async () => {
    const [a, b] = await two();
    const unpaired = await a.waitPeer('m2', (p) => p.name === 'm2' && p.online);
    // Before pairing a machine says what finding it needs, not its kernel or load.
    expect(unpaired).toMatchObject({ os: 'Linux', kernel: '', load: null });
    const asking = a.vos(['pair', 'm2', '--timeout', '20']);
    const request = await b.waitPeer('the request', (p) => p.name === 'm1' && p.pairing?.direction === 'incoming');
    const pending = await b.vos(['pair', '--pending', '--json']);
    expect(JSON.parse(pending.stdout)[0].pairing.code).toBe(request.pairing!.code);
    // Both machines show the same code.
    const mine = await a.waitPeer('its own request', (p) => p.name === 'm2' && p.pairing?.direction === 'outgoing');
    expect(mine.pairing!.code).toBe(request.pairing!.code);
    expect(request.pairing!.code).toMatch(/^\d{6}$/);
    // And the same two short ids beside it: m1 asked, m2 was asked.
    expect(mine.pairing!.shortIds).toEqual({ requester: request.shortId, responder: mine.shortId });
    expect(request.pairing!.shortIds).toEqual(mine.pairing!.shortIds);
    expect((await b.vos(['pair', '--pending'])).stdout).toContain(`${request.shortId} -> ${mine.shortId}`);

    // m2's user accepts first: neither side trusts the other before m1's user confirmed too.
    const accepting = b.vos(['pair', 'accept', 'm1', '--code', request.pairing!.code, '--timeout', '20']);
    await a.waitPeer('the acceptance', (p) => p.name === 'm2' && p.pairing?.peerConfirmed === true);
    expect((await b.peers()).find((p) => p.name === 'm1')).toMatchObject({ paired: false, pairing: { confirmed: true, peerConfirmed: false } });
    expect((await a.peers()).find((p) => p.name === 'm2')).toMatchObject({ paired: false, pairing: { confirmed: false } });
    const confirmed = await a.vos(['pair', 'confirm', 'm2', '--code', request.pairing!.code]);
    expect(confirmed.stderr).toBe('');
    expect(confirmed.stdout).toMatch(/^paired with m2 /);
    const accepted = await accepting;
    expect(accepted.stderr).toBe('');
    expect(accepted.stdout).toMatch(/^accepted; waiting for m1 .* to confirm the code there\.\.\.\npaired with m1 /);
    const asked = await asking;
    expect(asked.code).toBe(0);
    expect(asked.stdout).toContain(`code ${request.pairing!.code}   ${request.shortId} -> ${mine.shortId}`);
    expect(asked.stdout).toContain('vos pair confirm m2 --code');
    expect(asked.stdout).toMatch(/paired with m2 /);
    expect((await a.peers()).find((p) => p.name === 'm2')).toMatchObject({ paired: true, link: 'up', pairing: null });
    expect((await b.peers()).find((p) => p.name === 'm1')).toMatchObject({ paired: true, link: 'up', pairing: null });
    // Once paired, each tells the other its kernel and load.
    await a.waitPeer('m2 kernel', (p) => p.name === 'm2' && /^\d+\.\d+/.test(p.kernel) && typeof p.load === 'number');
    await b.waitPeer('m1 kernel', (p) => p.name === 'm1' && /^\d+\.\d+/.test(p.kernel) && typeof p.load === 'number');
    const stored = JSON.parse(readFileSync(join(a.home, 'peers.json'), 'utf8'));
    expect(stored.peers).toMatchObject([{ name: 'm2', paired: true }]);
    // The identity's key is the owner's alone.
    expect(statSync(join(a.home, 'identity', 'key.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(join(a.home, 'identity')).mode & 0o777).toBe(0o700);

    // b restarts (same key): a links to it again by itself, still paired.
    await b.kill('SIGTERM');
    await a.waitPeer('m2 gone', (p) => p.name === 'm2' && !p.online, 5000);
    const b2 = await lab.agent(1, 'm2', { home: b.home });
    await a.waitPeer('m2 back and linked', (p) => p.name === 'm2' && p.paired && p.link === 'up', 15_000);
    await b2.waitPeer('m1 paired and linked', (p) => p.name === 'm1' && p.paired && p.link === 'up', 15_000);
    const all = await a.vos(['ls', '--all']);
    expect(all.code).toBe(0);
  }, 60_000);

  it('refuses a wrong code; the asking side learns of a rejection', async () => {
    const [a, b] = await two();
    await a.waitPeer('m2', (p) => p.name === 'm2' && p.online);
    const asking = a.vos(['pair', 'm2', '--timeout', '20']);
    const request = await b.waitPeer('the request', (p) => p.name === 'm1' && p.pairing?.direction === 'incoming');
    const wrong = request.pairing!.code === '000000' ? '111111' : '000000';
    const refused = await b.vos(['pair', 'accept', 'm1', '--code', wrong]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/the code does not match/);
    expect((await b.peers()).find((p) => p.name === 'm1')).toMatchObject({ paired: false, pairing: { direction: 'incoming' } });
    expect((await a.peers()).find((p) => p.name === 'm2')?.paired).toBe(false);

    const rejected = await b.vos(['pair', 'reject', 'm1']);
    expect(rejected.code).toBe(0);
    const asked = await asking;
    expect(asked.code).toBe(1);
    expect(asked.stderr).toMatch(/m2 rejected the pairing/);
    expect((await a.peers()).find((p) => p.name === 'm2')).toMatchObject({ paired: false, pairing: null });
  }, 40_000);

  /** `vos pair PEER` on `a` with a terminal (a pty of script(1)), whose user answers when asked. */
  function askOnTerminal(a: HostAgent, peer: string): { answer(text: string): void; asked: Promise<void>; done: Promise<{ code: number | null; out: string }>; kill(): void } {
    const proc = spawn('script', ['-q', '-e', '-c', `'${process.execPath}' '${VOS}' pair ${peer} --timeout 20`, '/dev/null'], {
      env: { ...process.env, VOS_HOME: a.home },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const done = new Promise<{ code: number | null; out: string }>((resolve) => proc.once('exit', (code) => resolve({ code, out })));
    return {
      answer: (text) => proc.stdin.write(text),
      asked: waitFor(`vos pair on ${a.name} to ask whether the codes match`, () => out.includes(`Does ${peer} show the same code`), 15_000).then(() => undefined),
      done,
      kill: () => proc.kill('SIGKILL'),
    };
  }

  it('pairs when the asking user confirms first, on its terminal, and the other accepts after', async () => {
    const [a, b] = await two();
    await a.waitPeer('m2', (p) => p.name === 'm2' && p.online);
    const asking = askOnTerminal(a, 'm2');
    try {
      const request = await b.waitPeer('the request', (p) => p.name === 'm1' && p.pairing?.direction === 'incoming');
      await asking.asked;
      asking.answer('y\n');
      // Confirmed on m1: m2 learns it, and is still to accept.
      await b.waitPeer('the confirmation', (p) => p.name === 'm1' && p.pairing?.peerConfirmed === true);
      expect((await a.peers()).find((p) => p.name === 'm2')).toMatchObject({ paired: false, pairing: { confirmed: true, peerConfirmed: false } });
      const accepted = await b.vos(['pair', 'accept', 'm1', '--code', request.pairing!.code]);
      expect(accepted.stdout).toMatch(/^paired with m1 /); // m1 had confirmed: paired at once
      const { code, out } = await asking.done;
      expect(out).toContain(`code ${request.pairing!.code}`);
      expect(out).toMatch(/confirmed; waiting for m2 .* to accept/);
      expect(out).toMatch(/paired with m2 /);
      expect(code).toBe(0);
      await a.waitPeer('m2 paired', (p) => p.name === 'm2' && p.paired && p.pairing === null);
      expect((await b.peers()).find((p) => p.name === 'm1')).toMatchObject({ paired: true, pairing: null });
      expect((await a.vos(['ls', '--all'])).code).toBe(0);
    } finally {
      asking.kill();
    }
  }, 60_000);

  it('the asking user saying the codes differ pairs neither side, though the other accepted', async () => {
    const [a, b] = await two();
    await a.waitPeer('m2', (p) => p.name === 'm2' && p.online);
    const asking = askOnTerminal(a, 'm2');
    try {
      const request = await b.waitPeer('the request', (p) => p.name === 'm1' && p.pairing?.direction === 'incoming');
      const accepting = b.vos(['pair', 'accept', 'm1', '--code', request.pairing!.code, '--timeout', '20']);
      await a.waitPeer('the acceptance', (p) => p.name === 'm2' && p.pairing?.peerConfirmed === true);
      await asking.asked;
      asking.answer('n\n');
      const { code, out } = await asking.done;
      expect(code).toBe(1);
      expect(out).toMatch(/the codes differ: the pairing with m2 .* is cancelled on both sides/);
      const accepted = await accepting;
      expect(accepted.code).toBe(1);
      expect(accepted.stderr).toMatch(/m1 cancelled the pairing: the user declined/);
      expect((await a.peers()).find((p) => p.name === 'm2')).toMatchObject({ paired: false, pairing: null });
      expect((await b.peers()).find((p) => p.name === 'm1')).toMatchObject({ paired: false, pairing: null });
      // Nothing paired was written (peers.json holds paired and added machines only).
      const stored = join(b.home, 'peers.json');
      expect(existsSync(stored) ? JSON.parse(readFileSync(stored, 'utf8')).peers.filter((p: { paired: boolean }) => p.paired) : []).toEqual([]);
      // m2 trusts nothing from m1 either.
      const screen = await b.vos(['screen', 'x@m1']);
      expect(screen.stderr).toMatch(/m1 is not paired with this machine/);
    } finally {
      asking.kill();
    }
  }, 60_000);

  it('a confirmation with another code than the one shown cancels the pairing on both sides', async () => {
    const [a, b] = await two();
    await a.waitPeer('m2', (p) => p.name === 'm2' && p.online);
    const asking = a.vos(['pair', 'm2', '--timeout', '20']);
    const request = await b.waitPeer('the request', (p) => p.name === 'm1' && p.pairing?.direction === 'incoming');
    const other = request.pairing!.code === '000000' ? '111111' : '000000';
    const confirmed = await a.vos(['pair', 'confirm', 'm2', '--code', other]);
    expect(confirmed.code).toBe(1);
    expect(confirmed.stderr).toMatch(/m2 shows another code than this machine: the pairing is cancelled on both sides/);
    expect((await asking).stderr).toMatch(/another code/);
    await b.waitPeer('the request gone', (p) => p.name === 'm1' && p.pairing === null);
    const late = await b.vos(['pair', 'accept', 'm1', '--code', request.pairing!.code]);
    expect(late.code).toBe(1);
    expect((await b.peers()).find((p) => p.name === 'm1')?.paired).toBe(false);
  }, 40_000);

  it('happy path with the helper in both orders', async () => {
    const [a, b] = await two();
    await pairAgents(a, b, 'confirm-first');
    expect((await a.peers()).find((p) => p.name === 'm2')).toMatchObject({ paired: true });
    expect((await b.peers()).find((p) => p.name === 'm1')).toMatchObject({ paired: true });
    expect((await a.vos(['unpair', 'm2'])).code).toBe(0);
    await b.waitPeer('m1 unpaired', (p) => p.name === 'm1' && !p.paired);
    await pairAgents(b, a, 'accept-first');
    expect((await a.peers()).find((p) => p.name === 'm2')).toMatchObject({ paired: true });
    expect((await b.peers()).find((p) => p.name === 'm1')).toMatchObject({ paired: true });
  }, 60_000);

  it('a machine in the middle that accepts a request at once is not trusted by the asking side', async () => {
    lab.network(2);
    const a = await lab.agent(0, 'm1');
    const fakeHost = lab.net!.hosts[1]!;
    const fake = lab.net!.spawn(fakeHost, process.execPath, [join(ROOT, 'test', 'community', 'raw-responder.mjs'), fakeHost.address, String(PEER_PORT)]);
    let out = '';
    fake.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    fake.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const frames = (): Array<Record<string, unknown>> =>
      out
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    try {
      await waitFor('the fake to listen', () => out.includes('"listening":true'));
      expect((await a.vos(['peer', 'add', `${fakeHost.address}:${PEER_PORT}`])).code).toBe(0);
      const asking = a.vos(['pair', 'fake', '--timeout', '20']);
      // The fake answered the request with pair-accept and then asked for the session list:
      // m1 took the acceptance (it shows it) and refused the request, as from any stranger.
      await waitFor('m1 to refuse the fake\'s API request', () =>
        frames().find((f) => f.kind === 'control' && (f.json as { t: string }).t === 'refused' && /not paired/.test((f.json as { reason: string }).reason)),
      );
      expect(frames().some((f) => f.kind === 'rpc')).toBe(false); // no API answer at all
      const seen = await a.waitPeer('the acceptance taken', (p) => p.name === 'fake' && p.pairing?.peerConfirmed === true);
      expect(seen).toMatchObject({ paired: false, pairing: { direction: 'outgoing', confirmed: false } });
      expect(readFileSync(join(a.home, 'peers.json'), 'utf8')).not.toMatch(/"paired":\s*true/);
      // Its sessions cannot be had either.
      const ls = await a.vos(['screen', 'x@fake']);
      expect(ls.stderr).toMatch(/fake is not paired with this machine/);
      // The user sees another code on the real machine and says so: the pairing ends.
      const rejected = await a.vos(['pair', 'reject', 'fake']);
      expect(rejected.code).toBe(0);
      const asked = await asking;
      expect(asked.code).toBe(1);
      await waitFor('the fake to be told', () => frames().find((f) => f.kind === 'control' && (f.json as { t: string }).t === 'pair-cancel'));
      expect((await a.peers()).find((p) => p.name === 'fake')).toMatchObject({ paired: false, pairing: null });
    } finally {
      fake.kill('SIGKILL');
    }
  }, 40_000);

  it('an unpaired machine may only ask to pair: its API requests and streams are refused', async () => {
    const [a, b] = await two();
    await a.waitPeer('m2', (p) => p.name === 'm2' && p.online);
    // Through the agent: nothing to reach.
    const screen = await a.vos(['screen', 'x@m2']);
    expect(screen.code).toBe(1);
    expect(screen.stderr).toMatch(/m2 is not paired with this machine/);

    // By hand, speaking the link protocol: hello, then requests and a stream.
    const script = join(ROOT, 'test', 'community', 'raw-peer.mjs');
    const out = lab.net!.exec(lab.net!.hosts[0]!, process.execPath, [script, lab.net!.hosts[1]!.address, String(PEER_PORT), '0', '1500'], { timeoutMs: 10_000 });
    const frames = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(frames[0]).toEqual({ kind: 'hello', name: 'm2' });
    const refusals = frames.filter((f) => f.kind === 'control' && (f.json as { t: string }).t === 'refused');
    expect(refusals.length).toBeGreaterThanOrEqual(2); // the channel's hello and the request
    expect((refusals[0]!.json as { reason: string }).reason).toMatch(/not paired/);
    expect(frames).toContainEqual({ kind: 'reset', stream: 1, json: { reason: expect.stringMatching(/not paired/) } });
    expect(frames.some((f) => f.kind === 'rpc')).toBe(false); // no API answer at all

    // One that keeps trying loses its link.
    const flood = lab.net!.exec(lab.net!.hosts[0]!, process.execPath, [script, lab.net!.hosts[1]!.address, String(PEER_PORT), '60', '3000'], { timeoutMs: 10_000 });
    expect(flood).toContain('"closed":true');
    await waitFor('m2 to log the refusals', () => /refused from stranger .*an API request before pairing/.test(b.log()));

    // Asking to pair is allowed, a few times a minute.
    const asks = lab.net!.exec(lab.net!.hosts[0]!, process.execPath, [script, lab.net!.hosts[1]!.address, String(PEER_PORT), '0', '1500', '5'], { timeoutMs: 10_000 });
    const limited = asks.trim().split('\n').map((l) => JSON.parse(l) as { kind?: string; json?: { t?: string; reason?: string } });
    expect(limited.filter((f) => f.json?.reason?.includes('too many pairing requests'))).toHaveLength(2); // 3 asked, 2 refused
    // The first was shown to m2's user (and dropped when the stranger left).
    await waitFor('m2 to log the request', () => /stranger \([A-Z2-7-]+\) asks to pair; code \d{6}/.test(b.log()));
    // Never paired; once its link closed, not kept at all (a stranger leaves no entry).
    expect((await b.peers()).find((p) => p.name === 'stranger')?.paired ?? false).toBe(false);
    await waitFor('m2 to log the closed link', () => /too many refused messages/.test(b.log()));
  }, 40_000);

  it('refuses an impostor: a new key under a paired machine\'s name', async () => {
    const [a, b] = await two();
    await pairAgents(a, b);
    // m1 is replaced by a machine with a new key and the same name, at the same address.
    await a.kill('SIGTERM');
    const impostor = await lab.agent(0, 'm1');
    const warned = await b.waitPeer('the impostor flagged', (p) => p.name === 'm1' && !p.paired && p.warning !== null, 15_000);
    expect(warned.warning).toMatch(/another certificate/);
    expect(warned.id).not.toBe((await b.peers()).find((p) => p.paired)?.id);
    // The paired m1 stays what it was: paired, not linked to the impostor.
    const original = (await b.peers()).find((p) => p.name === 'm1' && p.paired)!;
    expect(original.link).not.toBe('up');
    // It cannot pair in the original's place either.
    await impostor.waitPeer('m2', (p) => p.name === 'm2');
    const tries = await impostor.vos(['pair', 'm2', '--timeout', '5']);
    expect(tries.code).toBe(1);
    expect(tries.stderr).toMatch(/refused|not connected|cannot reach/);
    expect((await b.peers()).filter((p) => p.paired).map((p) => p.id)).toEqual([original.id]);
    // And a session reference by that name still means the paired machine (offline now).
    const screen = await b.vos(['screen', 'x@m1']);
    expect(screen.code).toBe(1);
    expect(screen.stderr).toMatch(/m1 is not connected right now/);
    await waitFor('m2 to log the refusal', () => /another certificate/.test(b.log()));
  }, 60_000);

  it('unpairing forgets the pairing on both sides', async () => {
    const [a, b] = await two();
    await pairAgents(a, b);
    const r = await a.vos(['unpair', 'm2']);
    expect(r.code).toBe(0);
    await b.waitPeer('m1 unpaired', (p) => p.name === 'm1' && !p.paired);
    expect((await a.peers()).find((p) => p.name === 'm2')?.paired).toBe(false);
    const stored = JSON.parse(readFileSync(join(b.home, 'peers.json'), 'utf8'));
    expect(stored.peers.filter((p: { paired: boolean }) => p.paired)).toEqual([]);
    await waitFor('m1 to refuse m2 now', async () => (await b.vos(['screen', 'x@m1'])).stderr.includes('not paired'));
  }, 40_000);
});
