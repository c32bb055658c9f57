/**
 * Pairing on its own: a real peer registry (peers.json in a temporary directory) and fake
 * links that record what would go to the peer. The code is the one both sides derive, a code
 * typed wrong too often rejects the request, only the asking side trusts an acceptance, and
 * pairing requests are rate-limited per peer and in all.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { verificationCode } from '../../src-main/base/device-id.js';
import {
  PAIR_REQUESTS_PER_PEER,
  PAIR_REQUESTS_TOTAL,
  PAIRING_TIMEOUT_MS,
  Pairings,
  WRONG_CODES_ALLOWED,
  type PairingLink,
  type PairingLinks,
} from '../../src-main/agent/community/pairing.js';
import { PeerRegistry, type Peer, type PeerEvent } from '../../src-main/agent/community/peer-registry.js';
import { PeerStore } from '../../src-main/agent/community/peer-store.js';

const SELF = { id: '5'.repeat(64), name: 'here', certDer: Buffer.from('my certificate') };

class FakeLink implements PairingLink {
  sent: Array<Record<string, unknown>> = [];
  constructor(readonly peerCertDer: Uint8Array) {}
  sendControl(message: Record<string, unknown>): void {
    this.sent.push(message);
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

describe('pairing', () => {
  let home: string;
  let links: FakeLinks;
  let registry: PeerRegistry;
  let pairings: Pairings;
  let events: PeerEvent[];

  /** A peer known by mDNS whose link is up. */
  const peer = (n: number, name: string): { p: Peer; link: FakeLink } => {
    const p = registry.discovered({ id: (n + 1).toString(16).padStart(64, '0'), name, version: '1', os: 'Linux', arch: 'x64', addresses: [] });
    const link = new FakeLink(Buffer.from(`certificate of ${name}`));
    links.up.set(p.id, link);
    return { p, link };
  };

  beforeEach(() => {
    home = mkdtempSync(join(tmpdir(), 'vos-pairing-'));
    links = new FakeLinks();
    events = [];
    registry = new PeerRegistry(SELF, new PeerStore(home, () => {}), { link: (id) => (links.up.has(id) ? 'up' : 'down'), pairing: (id) => pairings.state(id) }, () => {});
    registry.onEvent((e) => events.push(e));
    pairings = new Pairings({ self: SELF, log: () => {} }, registry, links);
  });
  afterEach(() => {
    pairings.stop();
    vi.useRealTimers();
    rmSync(home, { recursive: true, force: true });
  });

  it('shows the code both sides derive, and pairs when it is typed right', () => {
    const { p, link } = peer(0, 'alpha');
    pairings.control(p, link, { t: 'pair-request', name: 'alpha' });
    const code = verificationCode(SELF.certDer, link.peerCertDer);
    expect(code).toMatch(/^\d{6}$/);
    expect(events.find((e) => e.event === 'pair.requested')).toMatchObject({ code, peer: { name: 'alpha', pairing: { direction: 'incoming', code } } });
    expect(pairings.pending().map((i) => i.name)).toEqual(['alpha']);
    const info = pairings.accept('alpha', `${code.slice(0, 3)} ${code.slice(3)}`);
    expect(info).toMatchObject({ paired: true, pairing: null });
    expect(link.sent).toEqual([{ t: 'pair-accept' }]);
    expect(links.trusted.has(p.id)).toBe(true);
    expect(new PeerStore(home, () => {}).get(p.id)).toMatchObject({ paired: true, name: 'alpha' });
  });

  it(`rejects the request after ${WRONG_CODES_ALLOWED} wrong codes`, () => {
    const { p, link } = peer(0, 'alpha');
    pairings.control(p, link, { t: 'pair-request' });
    const wrong = verificationCode(SELF.certDer, link.peerCertDer) === '000000' ? '111111' : '000000';
    for (let i = 1; i < WRONG_CODES_ALLOWED; i++) {
      expect(() => pairings.accept('alpha', wrong)).toThrow(expect.objectContaining({ code: 'wrong_code', message: expect.stringMatching(/tries left/) }));
    }
    expect(() => pairings.accept('alpha', wrong)).toThrow(expect.objectContaining({ code: 'wrong_code', message: expect.stringMatching(/rejected after/) }));
    expect(link.sent).toEqual([{ t: 'pair-reject', reason: 'the code was typed wrong too often' }]);
    expect(pairings.state(p.id)).toBeNull();
    expect(p.paired).toBe(false);
    expect(() => pairings.accept('alpha', wrong)).toThrow(expect.objectContaining({ code: 'invalid_params' }));
  });

  it('asks with the same code, and only the asking side trusts an acceptance', async () => {
    const { p, link } = peer(0, 'alpha');
    pairings.control(p, link, { t: 'pair-accept' }); // nobody asked
    expect(p.paired).toBe(false);
    const asked = await pairings.request('alpha');
    expect(asked.code).toBe(verificationCode(SELF.certDer, link.peerCertDer));
    expect(link.sent).toEqual([{ t: 'pair-request', name: 'here' }]);
    const waiting = pairings.wait('alpha', 5_000);
    pairings.control(p, link, { t: 'pair-accept' });
    await expect(waiting).resolves.toMatchObject({ paired: true });
    expect(links.trusted.has(p.id)).toBe(true);
  });

  it('tells a late waiter how the request ended', async () => {
    const { p, link } = peer(0, 'alpha');
    await pairings.request('alpha');
    pairings.control(p, link, { t: 'pair-reject', reason: 'no thanks' });
    await expect(pairings.wait('alpha', 1_000)).rejects.toMatchObject({ code: 'pair_rejected', message: 'alpha rejected the pairing: no thanks' });
  });

  it('a request nobody answers expires', async () => {
    vi.useFakeTimers();
    const { link } = peer(0, 'alpha');
    await pairings.request('alpha');
    const waiting = pairings.wait('alpha', PAIRING_TIMEOUT_MS * 2);
    const outcome = expect(waiting).rejects.toMatchObject({ code: 'timeout', message: expect.stringMatching(/expired/) });
    vi.advanceTimersByTime(PAIRING_TIMEOUT_MS);
    await outcome;
    expect(link.sent.at(-1)).toEqual({ t: 'pair-cancel', reason: 'nobody answered in time' });
  });

  it(`takes ${PAIR_REQUESTS_PER_PEER} requests a minute from one peer`, () => {
    vi.useFakeTimers();
    const { p, link } = peer(0, 'alpha');
    for (let i = 0; i < PAIR_REQUESTS_PER_PEER; i++) pairings.control(p, link, { t: 'pair-request' });
    expect(links.refusals).toEqual([]);
    pairings.control(p, link, { t: 'pair-request' });
    expect(links.refusals).toEqual(['alpha: pairing requests over the limit']);
    expect(link.sent.at(-1)).toEqual({ t: 'refused', reason: 'too many pairing requests: try again in a minute' });
    vi.advanceTimersByTime(60_000);
    pairings.control(p, link, { t: 'pair-request' });
    expect(links.refusals).toHaveLength(1);
  });

  it(`takes ${PAIR_REQUESTS_TOTAL} requests a minute from all peers together`, () => {
    vi.useFakeTimers();
    for (let i = 0; i < PAIR_REQUESTS_TOTAL; i++) {
      const { p, link } = peer(i, `m${i}`);
      pairings.control(p, link, { t: 'pair-request' });
    }
    expect(links.refusals).toEqual([]);
    const { p, link } = peer(PAIR_REQUESTS_TOTAL, 'late');
    pairings.control(p, link, { t: 'pair-request' });
    expect(links.refusals).toHaveLength(1);
  });

  it('unknown control messages are refused; the peer pays for them', () => {
    const { p, link } = peer(0, 'alpha');
    pairings.control(p, link, { t: 'what' });
    expect(links.refusals).toEqual(['alpha: unknown control message "what"']);
  });

  it('unpairing forgets the pairing and tells the peer', () => {
    const { p, link } = peer(0, 'alpha');
    pairings.control(p, link, { t: 'pair-request' });
    pairings.accept('alpha', verificationCode(SELF.certDer, link.peerCertDer));
    expect(pairings.unpair('alpha')).toMatchObject({ paired: false });
    expect(link.sent.at(-1)).toEqual({ t: 'unpair' });
    expect(links.trusted.has(p.id)).toBe(false);
    expect(new PeerStore(home, () => {}).get(p.id)).toBeUndefined();
  });
});
