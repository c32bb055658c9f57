/**
 * The peer registry on its own: the links and pairings it asks about are a fake PeerStatus,
 * the store is a real peers.json in a temporary directory. What a machine says about itself is
 * merged, online/offline follows mDNS and the link, a machine gone long enough is no longer
 * listed (unless paired), references resolve by name or id, and the impostor check flags a
 * machine that takes a paired one's name.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { PairingState, PeerInfo } from '../../src-main/api/protocol.js';
import { FORGET_UNSEEN_MS, MAX_STRANGERS, PeerRegistry, type PeerEvent, type PeerStatus } from '../../src-main/agent/community/peer-registry.js';
import type { DiscoveredPeer } from '../../src-main/agent/community/discovery.js';
import { PeerStore } from '../../src-main/agent/community/peer-store.js';

const SELF = { id: 'f'.repeat(64), name: 'here' };
const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

/** Links and pairings as the test sets them. */
class FakeStatus implements PeerStatus {
  links = new Map<string, PeerInfo['link']>();
  pairings = new Map<string, PairingState>();
  link(id: string): PeerInfo['link'] {
    return this.links.get(id) ?? 'down';
  }
  pairing(id: string): PairingState | null {
    return this.pairings.get(id) ?? null;
  }
}

function found(id: string, name: string, addresses: string[], about: Partial<DiscoveredPeer> = {}): DiscoveredPeer {
  return { id, name, version: '1.0', os: 'Linux', arch: 'x64', addresses, ...about };
}

describe('peer registry', () => {
  let home: string;
  let status: FakeStatus;
  let log: string[];
  let events: PeerEvent[];
  let registry: PeerRegistry;

  const make = (): PeerRegistry => {
    const r = new PeerRegistry(SELF, new PeerStore(home, (m) => log.push(m)), status, (m) => log.push(m));
    r.onEvent((e) => events.push(e));
    return r;
  };

  beforeEach(() => {
    home = mkdtempSync(join(tmpdir(), 'vos-registry-'));
    status = new FakeStatus();
    log = [];
    events = [];
    registry = make();
  });
  afterEach(() => {
    vi.useRealTimers();
    rmSync(home, { recursive: true, force: true });
  });

  it('lists no machine it has only heard the id of', () => {
    registry.peer(A);
    expect(registry.list()).toEqual([]);
  });

  it('takes what a discovered machine says, and where it answers now first', () => {
    registry.discovered(found(A, 'alpha', ['10.0.0.1:47470']));
    registry.discovered(found(A, 'alpha2', ['10.0.1.9:47470'], { os: 'FreeBSD' }));
    const [info] = registry.list();
    expect(info).toMatchObject({ id: A, name: 'alpha2', os: 'FreeBSD', kernel: '', load: null, online: true, link: 'down', paired: false });
    expect(info!.addresses).toEqual(['10.0.1.9:47470', '10.0.0.1:47470']);
    expect(events.at(-1)).toMatchObject({ event: 'peer.changed', peer: { name: 'alpha2' } });
  });

  it('keeps eight addresses at the most', () => {
    for (let i = 0; i < 12; i++) registry.discovered(found(A, 'alpha', [`10.0.0.${i}:47470`]));
    expect(registry.list()[0]!.addresses).toHaveLength(8);
    expect(registry.list()[0]!.addresses[0]).toBe('10.0.0.11:47470');
  });

  it('is online while mDNS sees it or its link is up, and offline after', () => {
    registry.discovered(found(A, 'alpha', ['10.0.0.1:47470']));
    registry.undiscovered(A, 'goodbye');
    expect(registry.list()[0]).toMatchObject({ online: false, link: 'down' });
    expect(log.at(-1)).toBe('alpha said goodbye');
    status.links.set(A, 'connecting');
    expect(registry.list()[0]).toMatchObject({ online: false, link: 'connecting' });
    status.links.set(A, 'up');
    const up = registry.list()[0]!;
    expect(up).toMatchObject({ online: true, link: 'up' });
    expect(up.lastSeen).toBeGreaterThan(Date.now() - 1000);
  });

  it('takes what a machine says in its HELLO when its link comes up, kernel and load once paired', () => {
    const p = registry.peer(A);
    registry.linked(p, { name: 'alpha', os: 'Linux', arch: 'arm64', version: '2.0' });
    status.links.set(A, 'up');
    expect(registry.list()[0]).toMatchObject({ name: 'alpha', arch: 'arm64', kernel: '', version: '2.0', load: null });
    registry.markPaired(p);
    registry.learnAbout(p, { kernel: '6.8', load: 1.25 });
    expect(registry.list()[0]).toMatchObject({ kernel: '6.8', load: 1.25 });
    registry.markUnpaired(p);
    expect(registry.list()[0]).toMatchObject({ kernel: '', load: null });
  });

  it('stops listing an unpaired machine unseen for an hour, but never a paired one', () => {
    vi.useFakeTimers();
    registry.discovered(found(A, 'alpha', ['10.0.0.1:47470']));
    registry.discovered(found(B, 'beta', ['10.0.0.2:47470']));
    registry.markPaired(registry.peer(B));
    registry.undiscovered(A, 'silent');
    registry.undiscovered(B, 'silent');
    expect(registry.list().map((p) => p.name)).toEqual(['alpha', 'beta']);
    vi.advanceTimersByTime(FORGET_UNSEEN_MS + 1);
    expect(registry.list().map((p) => p.name)).toEqual(['beta']);
    registry.changed(registry.peer(A));
    expect(events.at(-1)).toEqual({ event: 'peer.removed', id: A });
  });

  it('forgets a stranger whose link closed, keeps one that is discovered, added, paired or pairing', () => {
    const p = registry.peer(A);
    status.links.set(A, 'up');
    expect(registry.forgetStranger(p)).toBe(false); // its link is up
    status.links.set(A, 'down');
    status.pairings.set(A, { direction: 'incoming', code: '123456', shortIds: { requester: 'x', responder: 'y' }, confirmed: false, peerConfirmed: false, since: 1 });
    expect(registry.forgetStranger(p)).toBe(false); // pairing
    status.pairings.clear();
    expect(registry.forgetStranger(p)).toBe(true);
    expect(registry.get(A)).toBeUndefined();
    expect(events.at(-1)).toEqual({ event: 'peer.removed', id: A });
    const q = registry.discovered(found(B, 'beta', []));
    expect(registry.forgetStranger(q)).toBe(false);
  });

  it(`keeps ${MAX_STRANGERS} strangers at most: the idle ones seen longest ago go first`, () => {
    const keep = registry.peer('c'.repeat(64));
    keep.manual = true;
    const linked = registry.peer('d'.repeat(64));
    status.links.set(linked.id, 'up');
    for (let i = 0; i < MAX_STRANGERS * 4; i++) {
      const p = registry.peer(i.toString(16).padStart(64, '0'));
      p.lastSeen = i;
    }
    expect(registry.all().filter((p) => registry.isStranger(p))).toHaveLength(MAX_STRANGERS);
    expect(registry.get(keep.id)).toBe(keep);
    expect(registry.get(linked.id)).toBe(linked);
    expect(registry.get((MAX_STRANGERS * 4 - 1).toString(16).padStart(64, '0'))).toBeDefined();
    expect(registry.get('0'.repeat(64))).toBeUndefined();
  });

  it('lists a machine with a pairing in progress', () => {
    registry.peer(A);
    const shortIds = { requester: 'AAAA-AAAA-AAAA', responder: 'BBBB-BBBB-BBBB' };
    status.pairings.set(A, { direction: 'incoming', code: '123456', shortIds, confirmed: true, peerConfirmed: false, since: 1 });
    expect(registry.list()[0]!.pairing).toEqual({ direction: 'incoming', code: '123456', shortIds, confirmed: true, peerConfirmed: false, since: 1 });
  });

  it('remembers paired machines across restarts, and forgets them when unpaired', () => {
    registry.discovered(found(A, 'alpha', ['10.0.0.1:47470']));
    registry.markPaired(registry.peer(A));
    const again = make();
    expect(again.list()).toMatchObject([{ id: A, name: 'alpha', paired: true, online: false, addresses: ['10.0.0.1:47470'] }]);
    again.markUnpaired(again.peer(A));
    expect(make().get(A)).toBeUndefined();
  });

  it('finds a machine by name or by the start of its id, hex or short form', () => {
    registry.discovered(found(A, 'alpha', []));
    registry.discovered(found(B, 'beta', []));
    expect(registry.find('alpha').id).toBe(A);
    expect(registry.find('bbbb').id).toBe(B);
    const short = registry.info(registry.peer(A)).shortId;
    expect(registry.find(short.slice(0, 9)).id).toBe(A);
    expect(() => registry.find('gamma')).toThrow(expect.objectContaining({ code: 'unknown_peer' }));
    expect(() => registry.find('aaa')).toThrow(expect.objectContaining({ code: 'unknown_peer' })); // too short for an id
  });

  it('says when a reference matches two machines', () => {
    registry.discovered(found(A, 'twin', []));
    registry.discovered(found(B, 'twin', []));
    expect(() => registry.find('twin')).toThrow(expect.objectContaining({ code: 'ambiguous_peer' }));
  });

  it('flags a machine that takes the name of a paired one; the name then means the paired one', () => {
    registry.discovered(found(A, 'alpha', ['10.0.0.1:47470']));
    registry.markPaired(registry.peer(A));
    registry.discovered(found(B, 'alpha', ['10.0.0.1:47470']));
    const impostor = registry.get(B)!;
    expect(impostor.warning).toMatch(/another certificate under the name "alpha" of a paired machine .*: not trusted/);
    expect(registry.get(A)!.warning).toBeNull();
    expect(registry.find('alpha').id).toBe(A);
    expect(registry.flagImpostor(registry.peer(A), 'alpha', 'refused')).toBe(false); // the paired one itself
    expect(registry.flagImpostor(registry.peer(B), 'beta', 'refused')).toBe(false); // another name
  });

  it('knows references to this machine', () => {
    expect(registry.isSelf('here')).toBe(true);
    expect(registry.isSelf('ffff')).toBe(true);
    expect(registry.isSelf('alpha')).toBe(false);
    // A paired peer under this machine's name: the name means the peer.
    registry.discovered(found(A, 'here', []));
    registry.markPaired(registry.peer(A));
    expect(registry.isSelf('here')).toBe(false);
  });

  it('says why a machine cannot be reached', () => {
    const p = registry.peer(A);
    expect(registry.whyOffline(p)).toMatch(/no address known/);
    p.addresses = ['10.0.0.1:47470'];
    expect(registry.whyOffline(p)).toBe('last tried 10.0.0.1:47470');
    status.links.set(A, 'connecting');
    expect(registry.whyOffline(p)).toBe('connecting');
  });
});
