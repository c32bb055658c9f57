/**
 * Pairing on its own: a real peer registry (peers.json in a temporary directory) and fake
 * links that record what would go to the peer. The code is a commit-then-reveal short
 * authentication string: the responder's nonce goes out only after the requester's commitment
 * came, a reveal that does not match the commitment aborts the pairing, the code depends on
 * both nonces, and a machine in the middle that grinds nonces or certificates cannot make both
 * sides show the same code. Both users confirm the code: each side trusts the other only once
 * its own user and the other side's confirmed (in either order), so a machine in the middle that
 * answers a request with an acceptance is not trusted. A code typed wrong too often rejects the
 * request, and pairing requests are rate-limited per peer, per address and in all.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { deviceIdOf, shortDeviceId } from '../../src-main/base/device-id.js';
import { commitmentHolds, pairingCode, pairingCommitment, pairingNonce } from '../../src-main/base/pairing-sas.js';
import {
  EXCHANGE_TIMEOUT_MS,
  PAIR_REQUESTS_PER_ADDRESS,
  PAIR_REQUESTS_PER_PEER,
  PAIR_REQUESTS_TOTAL,
  PAIRING_TIMEOUT_MS,
  Pairings,
  WRONG_CODES_ALLOWED,
  sourceOf,
  type PairingLink,
  type PairingLinks,
} from '../../src-main/agent/community/pairing.js';
import { PeerRegistry, type Peer, type PeerEvent } from '../../src-main/agent/community/peer-registry.js';
import { PeerStore } from '../../src-main/agent/community/peer-store.js';

const SELF = { id: deviceIdOf(Buffer.from('my certificate')), name: 'here' };

class FakeLink implements PairingLink {
  sent: Array<Record<string, unknown>> = [];
  /** Called with each message sent, after it is recorded (a scripted peer answers here). */
  onSend: (m: Record<string, unknown>) => void = () => {};
  constructor(
    readonly peerCertDer: Uint8Array,
    readonly remoteAddress = '10.0.0.2:40000',
  ) {}
  sendControl(message: Record<string, unknown>): void {
    this.sent.push(message);
    this.onSend(message);
  }
}

/** Links that are up for the peers the test connects, and remember what pairing asked of them. */
class FakeLinks implements PairingLinks {
  up = new Map<string, FakeLink>();
  trusted = new Set<string>();
  refusals: string[] = [];
  async linkTo(p: Peer): Promise<PairingLink> {
    const link = this.up.get(p.id);
    if (!link) throw new Error(`no link to ${p.name} in this test`);
    return link;
  }
  current(id: string): PairingLink | null {
    return this.up.get(id) ?? null;
  }
  trust(p: Peer): void {
    this.trusted.add(p.id);
  }
  untrust(p: Peer): void {
    this.trusted.delete(p.id);
  }
  refuse(p: Peer, _link: PairingLink, what: string): void {
    this.refusals.push(`${p.name}: ${what}`);
  }
}

/** One agent's pairing: its registry (in `home`), fake links, and the events it emitted. */
function side(self: { id: string; name: string }, home: string): { registry: PeerRegistry; links: FakeLinks; pairings: Pairings; events: PeerEvent[]; log: string[] } {
  const links = new FakeLinks();
  const events: PeerEvent[] = [];
  const log: string[] = [];
  // The registry asks the pairings about a peer; they are made right below.
  const holder: { pairings?: Pairings } = {};
  const registry = new PeerRegistry(self, new PeerStore(home, () => {}), { link: (id) => (links.up.has(id) ? 'up' : 'down'), pairing: (id) => holder.pairings!.state(id) }, () => {});
  registry.onEvent((e) => events.push(e));
  holder.pairings = new Pairings({ self, log: (m) => log.push(m) }, registry, links);
  return { registry, links, pairings: holder.pairings, events, log };
}

/** A peer known by mDNS whose link (showing `cert`) is up. */
function connect(s: ReturnType<typeof side>, cert: string, name: string, remote = '10.0.0.2:40000'): { p: Peer; link: FakeLink } {
  const certDer = Buffer.from(cert);
  const p = s.registry.discovered({ id: deviceIdOf(certDer), name, version: '1', os: 'Linux', arch: 'x64', addresses: [] });
  const link = new FakeLink(certDer, remote);
  s.links.up.set(p.id, link);
  return { p, link };
}

/** The requester's first message, as an honest peer with `id` sends it to SELF. */
function honestRequest(id: string, nonce = pairingNonce()): { nonce: string; message: Record<string, unknown> } {
  return { nonce, message: { t: 'pair-request', name: 'alpha', commit: pairingCommitment(nonce, id, SELF.id) } };
}

describe('pairing', () => {
  const homes: string[] = [];
  let me: ReturnType<typeof side>;
  const home = (): string => {
    const h = mkdtempSync(join(tmpdir(), 'vos-pairing-'));
    homes.push(h);
    return h;
  };

  /** A peer of `me` that asked to pair and revealed its nonce: its code shows. */
  const asked = (n: number, name: string, remote?: string): { p: Peer; link: FakeLink; code: string } => {
    const { p, link } = connect(me, `certificate of ${name} ${n}`, name, remote);
    const { nonce, message } = honestRequest(p.id);
    me.pairings.control(p, link, message);
    const answer = link.sent.find((m) => m.t === 'pair-nonce');
    if (!answer) return { p, link, code: '' };
    me.pairings.control(p, link, { t: 'pair-reveal', nonce });
    return { p, link, code: pairingCode(p.id, SELF.id, nonce, answer.nonce as string) };
  };

  beforeEach(() => {
    me = side(SELF, home());
  });
  afterEach(() => {
    me.pairings.stop();
    vi.useRealTimers();
    for (const h of homes.splice(0)) rmSync(h, { recursive: true, force: true });
  });

  it('the code depends on both nonces and both ids; a commitment holds for its nonce only', () => {
    const [a, b] = [deviceIdOf(Buffer.from('a')), deviceIdOf(Buffer.from('b'))];
    const [na, nb] = [pairingNonce(), pairingNonce()];
    const code = pairingCode(a, b, na, nb);
    expect(code).toMatch(/^\d{6}$/);
    expect(pairingCode(a, b, na, nb)).toBe(code);
    // Changing any input changes the code (each comparison fails once in 10^6: 4 tries at most).
    let differ = 0;
    for (let i = 0; i < 4; i++) {
      const n = pairingNonce();
      if (pairingCode(a, b, n, nb) !== code && pairingCode(a, b, na, n) !== code && pairingCode(b, a, na, nb) !== code) differ++;
    }
    expect(differ).toBeGreaterThanOrEqual(3);
    const commit = pairingCommitment(na, a, b);
    expect(commitmentHolds(commit, na, a, b)).toBe(true);
    expect(commitmentHolds(commit, nb, a, b)).toBe(false);
    expect(commitmentHolds(commit, na, b, a)).toBe(false);
    expect(commitmentHolds(commit, 'zz', a, b)).toBe(false);
  });

  it('the responder sends its nonce only once it holds a commitment, and shows the code after the reveal', async () => {
    const { p, link } = connect(me, 'certificate of alpha', 'alpha');
    // No commitment, a malformed one: refused, no nonce.
    me.pairings.control(p, link, { t: 'pair-request', name: 'alpha' });
    me.pairings.control(p, link, { t: 'pair-request', name: 'alpha', commit: 'ab'.repeat(31) });
    me.pairings.control(p, link, { t: 'pair-reveal', nonce: pairingNonce() }); // nothing to reveal to
    expect(link.sent.filter((m) => m.t === 'pair-nonce')).toEqual([]);
    expect(me.links.refusals).toEqual([
      'alpha: a pair-request without a valid commitment',
      'alpha: a pair-request without a valid commitment',
      'alpha: a pairing reveal nobody asked for',
    ]);
    me.pairings.control(p, link, { t: 'pair-request', name: 'alpha' }); // over the per-peer limit now
    me.links.refusals = [];
    vi.useFakeTimers();
    vi.advanceTimersByTime(60_000);
    link.sent = [];

    const { nonce, message } = honestRequest(p.id);
    me.pairings.control(p, link, message);
    expect(link.sent).toEqual([{ t: 'pair-nonce', nonce: expect.stringMatching(/^[0-9a-f]{64}$/) }]);
    // Nothing shows before the reveal.
    expect(me.pairings.pending()).toEqual([]);
    expect(me.events.some((e) => e.event === 'pair.requested')).toBe(false);
    me.pairings.control(p, link, { t: 'pair-reveal', nonce });
    const code = pairingCode(p.id, SELF.id, nonce, link.sent[0]!.nonce as string);
    const shortIds = { requester: shortDeviceId(p.id), responder: shortDeviceId(SELF.id) };
    expect(me.events.find((e) => e.event === 'pair.requested')).toMatchObject({ code, peer: { name: 'alpha', pairing: { direction: 'incoming', code, shortIds } } });
    expect(me.pairings.pending().map((i) => i.name)).toEqual(['alpha']);
    const info = me.pairings.accept('alpha', `${code.slice(0, 3)} ${code.slice(3)}`);
    // Accepted here; trusted only once the asking side's user confirmed the code there too.
    expect(info).toMatchObject({ paired: false, pairing: { direction: 'incoming', confirmed: true, peerConfirmed: false } });
    expect(link.sent.at(-1)).toEqual({ t: 'pair-accept' });
    expect(me.links.trusted.has(p.id)).toBe(false);
    const waiting = me.pairings.wait('alpha', 5_000);
    me.pairings.control(p, link, { t: 'pair-confirm' });
    await expect(waiting).resolves.toMatchObject({ paired: true, pairing: null });
    expect(me.links.trusted.has(p.id)).toBe(true);
    expect(new PeerStore(homes[0]!, () => {}).get(p.id)).toMatchObject({ paired: true, name: 'alpha' });
  });

  it('a requester cannot change its nonce after the commitment: the pairing is refused', () => {
    const { p, link } = connect(me, 'certificate of alpha', 'alpha');
    const { message } = honestRequest(p.id);
    me.pairings.control(p, link, message);
    me.pairings.control(p, link, { t: 'pair-reveal', nonce: pairingNonce() }); // another nonce
    expect(link.sent.at(-1)).toEqual({ t: 'pair-reject', reason: 'the revealed nonce does not match its commitment: pairing aborted' });
    expect(me.pairings.pending()).toEqual([]);
    expect(me.events.some((e) => e.event === 'pair.requested')).toBe(false);
    expect(me.log.at(-1)).toMatch(/aborted: the revealed nonce does not match its commitment/);
    // The right nonce after that is too late: the exchange is gone.
    me.pairings.control(p, link, { t: 'pair-reveal', nonce: pairingNonce() });
    expect(me.links.refusals.at(-1)).toBe('alpha: a pairing reveal nobody asked for');
    // A malformed reveal aborts too.
    const again = honestRequest(p.id);
    me.pairings.control(p, link, again.message);
    me.pairings.control(p, link, { t: 'pair-reveal', nonce: 'not hex' });
    expect(link.sent.at(-1)).toEqual({ t: 'pair-reject', reason: 'a malformed pair-reveal: pairing aborted' });
  });

  it('a requester that never reveals is dropped after the exchange timeout', () => {
    vi.useFakeTimers();
    const { p, link } = connect(me, 'certificate of alpha', 'alpha');
    me.pairings.control(p, link, honestRequest(p.id).message);
    vi.advanceTimersByTime(EXCHANGE_TIMEOUT_MS);
    expect(link.sent.at(-1)).toEqual({ t: 'pair-reject', reason: `no reveal came within ${EXCHANGE_TIMEOUT_MS / 1000} s` });
    expect(me.pairings.pending()).toEqual([]);
  });

  it('asks with a commitment, reveals after the nonce, and trusts once its user confirmed and the peer accepted', async () => {
    const { p, link } = connect(me, 'certificate of alpha', 'alpha');
    me.pairings.control(p, link, { t: 'pair-accept' }); // nobody asked
    expect(p.paired).toBe(false);
    const peerNonce = pairingNonce();
    link.onSend = (m) => {
      if (m.t === 'pair-request') queueMicrotask(() => me.pairings.control(p, link, { t: 'pair-nonce', nonce: peerNonce }));
    };
    const result = await me.pairings.request('alpha');
    const [req, reveal] = link.sent;
    // The request carries the commitment and no nonce; the reveal opens it.
    expect(req).toEqual({ t: 'pair-request', name: 'here', commit: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(reveal).toEqual({ t: 'pair-reveal', nonce: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(commitmentHolds(req!.commit as string, reveal!.nonce as string, SELF.id, p.id)).toBe(true);
    expect(result.code).toBe(pairingCode(SELF.id, p.id, reveal!.nonce as string, peerNonce));
    expect(result.peer.pairing).toMatchObject({ direction: 'outgoing', shortIds: { requester: shortDeviceId(SELF.id), responder: shortDeviceId(p.id) } });
    // A second nonce is not taken.
    me.pairings.control(p, link, { t: 'pair-nonce', nonce: pairingNonce() });
    expect(me.links.refusals).toEqual(['alpha: an acceptance of a pairing that is not in progress', 'alpha: a pairing nonce nobody asked for']);
    const waiting = me.pairings.wait('alpha', 5_000);
    // The peer's acceptance alone is not enough: this side's user has not compared the codes.
    me.pairings.control(p, link, { t: 'pair-accept' });
    expect(p.paired).toBe(false);
    expect(me.links.trusted.has(p.id)).toBe(false);
    expect(me.pairings.state(p.id)).toMatchObject({ direction: 'outgoing', confirmed: false, peerConfirmed: true });
    const confirmed = me.pairings.confirm('alpha', result.code);
    expect(confirmed).toMatchObject({ paired: true, pairing: null });
    expect(link.sent.at(-1)).toEqual({ t: 'pair-confirm' });
    await expect(waiting).resolves.toMatchObject({ paired: true });
    expect(me.links.trusted.has(p.id)).toBe(true);
  });

  /** `me` asks alpha to pair; alpha answers with its nonce at once. */
  const requesting = async (): Promise<{ p: Peer; link: FakeLink; code: string }> => {
    const { p, link } = connect(me, 'certificate of alpha', 'alpha');
    link.onSend = (m) => {
      if (m.t === 'pair-request') queueMicrotask(() => me.pairings.control(p, link, { t: 'pair-nonce', nonce: pairingNonce() }));
    };
    const { code } = await me.pairings.request('alpha');
    return { p, link, code };
  };

  it('a machine in the middle that accepts at once is not trusted by the asking side', async () => {
    const { p, link } = connect(me, 'certificate of mallory', 'B');
    // It answers the request with its nonce and an acceptance right away; even one before the
    // code is known is refused.
    link.onSend = (m) => {
      if (m.t === 'pair-request') {
        queueMicrotask(() => {
          me.pairings.control(p, link, { t: 'pair-accept' });
          me.pairings.control(p, link, { t: 'pair-nonce', nonce: pairingNonce() });
          me.pairings.control(p, link, { t: 'pair-accept' });
          me.pairings.control(p, link, { t: 'pair-confirm' }); // the wrong direction: refused
        });
      }
    };
    const { code } = await me.pairings.request('B');
    await Promise.resolve();
    expect(me.links.refusals).toEqual(['B: an acceptance of a pairing that is not in progress', 'B: a confirmation of a pairing that is not in progress']);
    expect(p.paired).toBe(false);
    expect(me.links.trusted.has(p.id)).toBe(false);
    expect(me.registry.info(p).pairing).toMatchObject({ direction: 'outgoing', code, confirmed: false, peerConfirmed: true });
    // The user compares with the code the real B shows: it differs, and the pairing ends.
    const seenOnB = code === '000000' ? '111111' : '000000';
    const waiting = me.pairings.wait('B', 5_000);
    expect(() => me.pairings.confirm('B', seenOnB)).toThrow(expect.objectContaining({ code: 'wrong_code', message: expect.stringMatching(/another code/) }));
    await expect(waiting).rejects.toMatchObject({ code: 'wrong_code' });
    expect(link.sent.at(-1)).toEqual({ t: 'pair-cancel', reason: 'the code differs on the asking machine' });
    expect(me.pairings.state(p.id)).toBeNull();
    expect(p.paired).toBe(false);
    expect(me.links.trusted.has(p.id)).toBe(false);
    expect(me.log.at(-1)).toMatch(/its user saw another code there/);
    // Nothing to confirm any more, nor to accept.
    expect(() => me.pairings.confirm('B', code)).toThrow(expect.objectContaining({ code: 'invalid_params' }));
    me.pairings.control(p, link, { t: 'pair-accept' });
    expect(p.paired).toBe(false);
  });

  it('the asking side confirms first, then the peer accepts: paired', async () => {
    const { p, link, code } = await requesting();
    const info = me.pairings.confirm('alpha', code);
    expect(info).toMatchObject({ paired: false, pairing: { confirmed: true, peerConfirmed: false } });
    expect(link.sent.at(-1)).toEqual({ t: 'pair-confirm' });
    expect(me.links.trusted.has(p.id)).toBe(false);
    // Confirming twice sends nothing more.
    me.pairings.confirm('alpha', code);
    expect(link.sent.filter((m) => m.t === 'pair-confirm')).toHaveLength(1);
    const waiting = me.pairings.wait('alpha', 5_000);
    me.pairings.control(p, link, { t: 'pair-accept' });
    await expect(waiting).resolves.toMatchObject({ paired: true });
    expect(me.links.trusted.has(p.id)).toBe(true);
  });

  it("the asking side's user declines after the peer accepted: not paired, the peer is told", async () => {
    const { p, link } = await requesting();
    me.pairings.control(p, link, { t: 'pair-accept' });
    const waiting = me.pairings.wait('alpha', 5_000);
    me.pairings.reject('alpha');
    await expect(waiting).rejects.toMatchObject({ code: 'pair_rejected' });
    expect(link.sent.at(-1)).toEqual({ t: 'pair-cancel', reason: 'the user declined' });
    expect(p.paired).toBe(false);
    expect(me.links.trusted.has(p.id)).toBe(false);
  });

  it('the side asked drops a pairing its user accepted when the asking side cancels it', async () => {
    const { p, link, code } = asked(0, 'alpha');
    me.pairings.accept('alpha', code);
    const waiting = me.pairings.wait('alpha', 5_000);
    me.pairings.control(p, link, { t: 'pair-cancel', reason: 'the code differs on the asking machine' });
    await expect(waiting).rejects.toMatchObject({ code: 'pair_rejected', message: 'alpha cancelled the pairing: the code differs on the asking machine' });
    expect(p.paired).toBe(false);
    expect(me.links.trusted.has(p.id)).toBe(false);
    // A confirmation after that is refused, not trusted.
    me.pairings.control(p, link, { t: 'pair-confirm' });
    expect(p.paired).toBe(false);
    expect(me.links.refusals.at(-1)).toBe('alpha: a confirmation of a pairing that is not in progress');
  });

  it('the side asked takes the confirmation before its user accepts, too', () => {
    const { p, link, code } = asked(0, 'alpha');
    me.pairings.control(p, link, { t: 'pair-confirm' });
    expect(p.paired).toBe(false);
    expect(me.pairings.state(p.id)).toMatchObject({ confirmed: false, peerConfirmed: true });
    expect(me.pairings.accept('alpha', code)).toMatchObject({ paired: true, pairing: null });
    expect(link.sent.at(-1)).toEqual({ t: 'pair-accept' });
    expect(me.links.trusted.has(p.id)).toBe(true);
  });

  it('a paired peer that asks again (it lost its side) is forgotten and goes through the code again', () => {
    const { p, link, code } = asked(0, 'alpha');
    me.pairings.control(p, link, { t: 'pair-confirm' });
    me.pairings.accept('alpha', code);
    expect(p.paired).toBe(true);
    link.sent = [];
    me.pairings.control(p, link, honestRequest(p.id).message);
    expect(p.paired).toBe(false);
    expect(me.links.trusted.has(p.id)).toBe(false);
    expect(link.sent).toEqual([{ t: 'pair-nonce', nonce: expect.stringMatching(/^[0-9a-f]{64}$/) }]);
  });

  it('a request whose nonce never comes fails within the exchange timeout', async () => {
    vi.useFakeTimers();
    const { link } = connect(me, 'certificate of alpha', 'alpha');
    const asking = me.pairings.request('alpha');
    const outcome = expect(asking).rejects.toMatchObject({ code: 'timeout', message: expect.stringMatching(/did not answer the pairing request/) });
    await vi.advanceTimersByTimeAsync(EXCHANGE_TIMEOUT_MS);
    await outcome;
    expect(link.sent.at(-1)).toEqual({ t: 'pair-cancel', reason: `no nonce came within ${EXCHANGE_TIMEOUT_MS / 1000} s` });
    await expect(me.pairings.wait('alpha', 1_000)).rejects.toMatchObject({ code: 'timeout' });
  });

  it('a malformed nonce aborts the request', async () => {
    const { p, link } = connect(me, 'certificate of alpha', 'alpha');
    link.onSend = (m) => {
      if (m.t === 'pair-request') queueMicrotask(() => me.pairings.control(p, link, { t: 'pair-nonce', nonce: 'ABC' }));
    };
    await expect(me.pairings.request('alpha')).rejects.toMatchObject({ code: 'refused', message: expect.stringMatching(/malformed pairing nonce/) });
    expect(link.sent.some((m) => m.t === 'pair-reveal')).toBe(false);
  });

  it('a machine in the middle cannot make both sides show the same code', async () => {
    // A asks to pair with what it believes is B; M sits between, re-encrypting: A sees M's
    // certificate m1, B sees m2. With the old code M ground certificates until both codes
    // matched. Now it must commit to its nonce toward B before B's nonce is known: it holds
    // 3,000 candidates, commits to the first, and after B's nonce looks for one whose code is
    // A's. Revealing any but the committed one breaks the commitment; the committed one gives
    // a code M could not choose.
    const idB = deviceIdOf(Buffer.from('certificate of B'));
    const b = side({ id: idB, name: 'B' }, home());
    const towardA = connect(me, 'certificate m1', 'B'); // A = me: its link goes to M
    const towardB = connect(b, 'certificate m2', 'A'); // B's link comes from M
    const m1 = towardA.p.id;
    const m2 = towardB.p.id;

    // M answers A as a responder: its nonce after A's commitment (it cannot see A's nonce yet).
    const nonceToA = pairingNonce();
    towardA.link.onSend = (m) => {
      if (m.t === 'pair-request') queueMicrotask(() => me.pairings.control(towardA.p, towardA.link, { t: 'pair-nonce', nonce: nonceToA }));
    };
    const { code: codeA } = await me.pairings.request('B');
    const revealA = towardA.link.sent.find((m) => m.t === 'pair-reveal')!.nonce as string;
    expect(codeA).toBe(pairingCode(SELF.id, m1, revealA, nonceToA));

    const shownOnB: string[] = [];
    let refusedForCommitment = 0;
    for (const reveal of ['committed', 'best other'] as const) {
      vi.useFakeTimers();
      vi.advanceTimersByTime(60_000); // past the per-peer limit of the attempt before
      vi.useRealTimers();
      const candidates = Array.from({ length: 3000 }, () => pairingNonce());
      b.pairings.control(towardB.p, towardB.link, { t: 'pair-request', name: 'A', commit: pairingCommitment(candidates[0]!, m2, idB) });
      const nonceB = towardB.link.sent.at(-1)!.nonce as string;
      const others = candidates.slice(1);
      const nonce = reveal === 'committed' ? candidates[0]! : (others.find((n) => pairingCode(m2, idB, n, nonceB) === codeA) ?? others[0]!);
      b.pairings.control(towardB.p, towardB.link, { t: 'pair-reveal', nonce });
      const shown = b.pairings.state(towardB.p.id);
      if (shown) {
        shownOnB.push(shown.code);
        b.pairings.reject('A');
      }
      const last = towardB.link.sent.at(-1)!;
      if (last.t === 'pair-reject' && /does not match its commitment/.test(String(last.reason))) refusedForCommitment++;
    }
    // The committed nonce shows a code that matches A's once in 10^6; the other is refused.
    expect(shownOnB).toHaveLength(1);
    expect(shownOnB[0]).not.toBe(codeA);
    expect(refusedForCommitment).toBe(1);
    expect(b.registry.get(m2)?.paired).toBe(false);
    b.pairings.stop();
  });

  it('tells a late waiter how the request ended', async () => {
    const { p, link } = connect(me, 'certificate of alpha', 'alpha');
    link.onSend = (m) => {
      if (m.t === 'pair-request') queueMicrotask(() => me.pairings.control(p, link, { t: 'pair-nonce', nonce: pairingNonce() }));
    };
    await me.pairings.request('alpha');
    me.pairings.control(p, link, { t: 'pair-reject', reason: 'no thanks' });
    await expect(me.pairings.wait('alpha', 1_000)).rejects.toMatchObject({ code: 'pair_rejected', message: 'alpha rejected the pairing: no thanks' });
  });

  it('a request nobody accepts expires', async () => {
    const { p, link } = connect(me, 'certificate of alpha', 'alpha');
    link.onSend = (m) => {
      if (m.t === 'pair-request') queueMicrotask(() => me.pairings.control(p, link, { t: 'pair-nonce', nonce: pairingNonce() }));
    };
    vi.useFakeTimers();
    const asking = me.pairings.request('alpha');
    await vi.advanceTimersByTimeAsync(0);
    await asking;
    const waiting = me.pairings.wait('alpha', PAIRING_TIMEOUT_MS * 2);
    const outcome = expect(waiting).rejects.toMatchObject({ code: 'timeout', message: expect.stringMatching(/expired/) });
    vi.advanceTimersByTime(PAIRING_TIMEOUT_MS);
    await outcome;
    expect(link.sent.at(-1)).toEqual({ t: 'pair-cancel', reason: 'nobody answered in time' });
  });

  it(`rejects the request after ${WRONG_CODES_ALLOWED} wrong codes`, () => {
    const { p, link, code } = asked(0, 'alpha');
    const wrong = code === '000000' ? '111111' : '000000';
    for (let i = 1; i < WRONG_CODES_ALLOWED; i++) {
      expect(() => me.pairings.accept('alpha', wrong)).toThrow(expect.objectContaining({ code: 'wrong_code', message: expect.stringMatching(/tries left/) }));
    }
    expect(() => me.pairings.accept('alpha', wrong)).toThrow(expect.objectContaining({ code: 'wrong_code', message: expect.stringMatching(/rejected after/) }));
    expect(link.sent.at(-1)).toEqual({ t: 'pair-reject', reason: 'the code was typed wrong too often' });
    expect(me.pairings.state(p.id)).toBeNull();
    expect(p.paired).toBe(false);
    expect(() => me.pairings.accept('alpha', wrong)).toThrow(expect.objectContaining({ code: 'invalid_params' }));
  });

  it(`takes ${PAIR_REQUESTS_PER_PEER} requests a minute from one peer`, () => {
    vi.useFakeTimers();
    const { p, link } = connect(me, 'certificate of alpha', 'alpha');
    for (let i = 0; i < PAIR_REQUESTS_PER_PEER; i++) me.pairings.control(p, link, honestRequest(p.id).message);
    expect(me.links.refusals).toEqual([]);
    me.pairings.control(p, link, honestRequest(p.id).message);
    expect(me.links.refusals).toEqual(['alpha: pairing requests over the limit']);
    expect(link.sent.at(-1)).toEqual({ t: 'refused', reason: 'too many pairing requests: try again in a minute' });
    vi.advanceTimersByTime(60_000);
    me.pairings.control(p, link, honestRequest(p.id).message);
    expect(me.links.refusals).toHaveLength(1);
  });

  it(`takes ${PAIR_REQUESTS_PER_ADDRESS} requests a minute from one address: fresh identities there cannot block another address`, () => {
    vi.useFakeTimers();
    for (let i = 0; i < PAIR_REQUESTS_TOTAL * 3; i++) asked(i, `flood${i}`, `10.0.0.66:${40000 + i}`);
    expect(me.links.refusals).toHaveLength(PAIR_REQUESTS_TOTAL * 3 - PAIR_REQUESTS_PER_ADDRESS);
    expect(me.pairings.pending()).toHaveLength(PAIR_REQUESTS_PER_ADDRESS);
    // IPv6 from one /64 counts as one address too; IPv4 mapped into IPv6 as the IPv4 address.
    for (let i = 0; i < PAIR_REQUESTS_PER_ADDRESS + 2; i++) asked(100 + i, `six${i}`, `[2001:db8:1:2::${(i + 1).toString(16)}]:4000`);
    expect(me.pairings.pending()).toHaveLength(PAIR_REQUESTS_PER_ADDRESS * 2);
    asked(200, 'mapped', '[::ffff:10.0.0.66]:4000');
    expect(me.pairings.pending()).toHaveLength(PAIR_REQUESTS_PER_ADDRESS * 2);
    // Someone else, elsewhere, still gets through.
    const other = asked(300, 'honest', '10.0.0.7:50000');
    expect(other.code).toMatch(/^\d{6}$/);
    expect(me.pairings.state(other.p.id)).toMatchObject({ direction: 'incoming', code: other.code });
  });

  it(`takes ${PAIR_REQUESTS_TOTAL} requests a minute from all peers together`, () => {
    vi.useFakeTimers();
    for (let i = 0; i < PAIR_REQUESTS_TOTAL; i++) asked(i, `m${i}`, `10.0.${i}.1:4000`);
    expect(me.links.refusals).toEqual([]);
    asked(PAIR_REQUESTS_TOTAL, 'late', '10.1.0.1:4000');
    expect(me.links.refusals).toHaveLength(1);
  });

  it('counts requests by host, IPv4 mapped and IPv6 by /64', () => {
    expect(sourceOf('10.0.0.1:4000')).toBe('10.0.0.1');
    expect(sourceOf('[::ffff:10.0.0.1]:4000')).toBe('10.0.0.1');
    expect(sourceOf('[2001:db8:0:1::5]:4000')).toBe('2001:db8:0:1::/64');
    expect(sourceOf('[2001:db8:0:1:aa:bb:cc:dd]:4000')).toBe('2001:db8:0:1::/64');
    expect(sourceOf('[fe80::1]:4000')).toBe('fe80:0:0:0::/64');
  });

  it('unknown control messages are refused; the peer pays for them', () => {
    const { p, link } = connect(me, 'certificate of alpha', 'alpha');
    me.pairings.control(p, link, { t: 'what' });
    expect(me.links.refusals).toEqual(['alpha: unknown control message "what"']);
  });

  it('unpairing forgets the pairing and tells the peer', () => {
    const { p, link, code } = asked(0, 'alpha');
    me.pairings.accept('alpha', code);
    me.pairings.control(p, link, { t: 'pair-confirm' });
    expect(p.paired).toBe(true);
    expect(me.pairings.unpair('alpha')).toMatchObject({ paired: false });
    expect(link.sent.at(-1)).toEqual({ t: 'unpair' });
    expect(me.links.trusted.has(p.id)).toBe(false);
    expect(new PeerStore(homes[0]!, () => {}).get(p.id)).toBeUndefined();
  });
});
