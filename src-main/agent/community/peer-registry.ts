/**
 * The machines this agent knows: one record per device id (never keyed by address or name;
 * addresses are hints), what each says about itself, whether it is paired, added by hand, or
 * around on the network, and what clients see of it (PeerInfo, peer.changed / peer.removed).
 * Paired and hand-added machines are remembered across restarts in peer-store.ts.
 *
 * A stranger (a machine that is neither paired, added by hand, nor seen by mDNS: one that only
 * linked to this agent) is kept while its link is up or a pairing with it is in progress, and
 * forgotten when its link closes (`forgetStranger`); at most MAX_STRANGERS are kept in all, the
 * oldest idle ones evicted first. So fresh identities saying HELLO cannot grow the table.
 *
 * The registry does not know links or pairings in progress: it asks a PeerStatus (link-manager.ts and
 * pairing.ts answer) when it derives what clients see.
 */
import { VosError } from '../../api/errors.js';
import type { PairingState, PeerInfo } from '../../api/protocol.js';
import { shortDeviceId } from '../../base/device-id.js';
import type { DiscoveredPeer } from './discovery.js';
import type { PeerStore } from './peer-store.js';

/** A machine gone from the network stays listed (offline, with when it was last seen) this long. */
export const FORGET_UNSEEN_MS = 60 * 60_000;
/** Strangers kept at most (see above); beyond, the oldest without a link or pairing go. */
export const MAX_STRANGERS = 256;
/** Addresses kept per machine (most recent first). */
const MAX_ADDRESSES = 8;

/** What a machine says about itself to anyone (in mDNS TXT and in its HELLO). */
export type PeerAbout = Pick<PeerInfo, 'os' | 'arch' | 'version'>;
/** What a machine says about itself only once paired (link-manager.ts's `about` message). */
export type PairedAbout = Pick<PeerInfo, 'kernel' | 'load'>;

/**
 * A machine as this agent keeps it; `PeerRegistry.info()` derives what clients see. Its text
 * fields come from the machine itself and are cleaned where they arrive (base/peer-text.ts).
 */
export interface Peer extends PeerAbout, PairedAbout, Pick<PeerInfo, 'id' | 'name' | 'addresses' | 'paired' | 'lastSeen'> {
  manual: boolean;
  mdnsPresent: boolean;
  warning: string | null;
}

/** What the registry asks about a peer's link and pairing (owned by link-manager.ts and pairing.ts). */
export interface PeerStatus {
  link(id: string): PeerInfo['link'];
  pairing(id: string): PairingState | null;
}

export type PeerEvent =
  | { event: 'peer.changed'; peer: PeerInfo }
  | { event: 'peer.removed'; id: string }
  | { event: 'pair.requested'; peer: PeerInfo; code: string };

export class PeerRegistry {
  private readonly peers = new Map<string, Peer>();
  private readonly listeners = new Set<(e: PeerEvent) => void>();

  constructor(
    /** This machine: a reference to it is not a peer. */
    private readonly self: { id: string; name: string },
    private readonly store: PeerStore,
    private readonly status: PeerStatus,
    private readonly log: (message: string) => void,
  ) {
    for (const s of store.all()) {
      const p = this.peer(s.id);
      p.name = s.name;
      p.paired = s.paired;
      p.manual = s.manual;
      p.addresses = [...s.addresses];
      p.lastSeen = s.lastSeen;
    }
  }

  onEvent(listener: (e: PeerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: PeerEvent): void {
    for (const l of this.listeners) l(event);
  }

  /** The record of machine `id`, created (unknown, unpaired) if there is none. */
  peer(id: string): Peer {
    let p = this.peers.get(id);
    if (!p) {
      p = {
        id,
        name: id.slice(0, 12),
        os: '',
        arch: '',
        kernel: '',
        version: '',
        load: null,
        addresses: [],
        paired: false,
        manual: false,
        mdnsPresent: false,
        lastSeen: null,
        warning: null,
      };
      this.peers.set(id, p);
      this.evictStrangers(p);
    }
    return p;
  }

  /** Neither paired, added by hand, nor seen by mDNS: it only linked to this agent. */
  isStranger(p: Peer): boolean {
    return !p.paired && !p.manual && !p.mdnsPresent;
  }

  /**
   * Forgets p if it is a stranger with no link up and no pairing in progress (its link closed):
   * nothing about it is worth keeping. Says whether it did.
   */
  forgetStranger(p: Peer): boolean {
    if (!this.isStranger(p) || this.status.link(p.id) !== 'down' || this.status.pairing(p.id) !== null) return false;
    if (this.peers.get(p.id) !== p) return false;
    this.peers.delete(p.id);
    this.emit({ event: 'peer.removed', id: p.id });
    return true;
  }

  /** Keeps the strangers within MAX_STRANGERS: the idle ones seen longest ago go first. */
  private evictStrangers(newcomer: Peer): void {
    const strangers = this.all().filter((q) => this.isStranger(q));
    if (strangers.length <= MAX_STRANGERS) return;
    const idle = strangers
      .filter((q) => q !== newcomer && this.status.link(q.id) === 'down' && this.status.pairing(q.id) === null)
      .sort((x, y) => (x.lastSeen ?? 0) - (y.lastSeen ?? 0));
    for (const q of idle.slice(0, strangers.length - MAX_STRANGERS)) {
      this.peers.delete(q.id);
      this.emit({ event: 'peer.removed', id: q.id });
    }
  }

  get(id: string): Peer | undefined {
    return this.peers.get(id);
  }

  all(): Peer[] {
    return [...this.peers.values()];
  }

  list(): PeerInfo[] {
    return this.all()
      .filter((p) => this.visible(p))
      .map((p) => this.info(p));
  }

  /** Whether `ref` names this machine (its name, or the start of its id), not a peer. */
  isSelf(ref: string): boolean {
    if (ref === this.self.name) return !this.all().some((p) => p.name === ref && p.paired);
    return idStartsWith(this.self.id, ref);
  }

  /** A listed peer by id prefix (hex or short form) or exact name. */
  find(ref: string): Peer {
    const all = this.all().filter((p) => this.visible(p));
    const byName = all.filter((p) => p.name === ref);
    if (byName.length === 1) return byName[0]!;
    const byId = all.filter((p) => idStartsWith(p.id, ref));
    // Two machines under one name (a paired one and one that copies its name): the paired one.
    const pairedByName = byName.filter((p) => p.paired);
    if (byName.length > 1 && pairedByName.length === 1) return pairedByName[0]!;
    const matches = byName.length > 1 ? byName : byId;
    if (matches.length === 1) return matches[0]!;
    if (matches.length > 1) {
      throw new VosError('ambiguous_peer', `"${ref}" matches ${matches.length} machines (${matches.map((p) => `${p.name} ${shortDeviceId(p.id)}`).join(', ')}): use more of the id`);
    }
    throw new VosError('unknown_peer', `no machine "${ref}" is known here (vos peers lists them; vos peer add HOST:PORT adds one)`);
  }

  /** Listed: paired, added by hand, around now, or seen within the last FORGET_UNSEEN_MS. */
  visible(p: Peer): boolean {
    const recently = p.lastSeen !== null && Date.now() - p.lastSeen < FORGET_UNSEEN_MS;
    const linked = this.status.link(p.id) === 'up';
    return p.paired || p.manual || p.mdnsPresent || linked || this.status.pairing(p.id) !== null || p.warning !== null || recently;
  }

  info(p: Peer): PeerInfo {
    const link = this.status.link(p.id);
    const pairing = this.status.pairing(p.id);
    return {
      id: p.id,
      shortId: shortDeviceId(p.id),
      name: p.name,
      os: p.os,
      arch: p.arch,
      kernel: p.kernel,
      version: p.version,
      load: p.load,
      addresses: [...p.addresses],
      paired: p.paired,
      online: link === 'up' || p.mdnsPresent,
      lastSeen: link === 'up' ? Date.now() : p.lastSeen,
      link,
      warning: p.warning,
      pairing: pairing
        ? {
            direction: pairing.direction,
            code: pairing.code,
            shortIds: { ...pairing.shortIds },
            confirmed: pairing.confirmed,
            peerConfirmed: pairing.peerConfirmed,
            since: pairing.since,
          }
        : null,
    };
  }

  /**
   * `vos peer forget`: the record goes, remembered or not (it comes back if the machine is seen
   * again). The caller makes sure it is not paired and that nothing dials it any more.
   */
  forget(p: Peer): void {
    if (this.peers.get(p.id) === p) this.peers.delete(p.id);
    p.manual = false;
    this.store.remove(p.id);
    this.emit({ event: 'peer.removed', id: p.id });
  }

  /** Tells the listeners what became of p (removed: no longer listed). */
  changed(p: Peer): void {
    if (this.peers.get(p.id) !== p) return; // forgotten meanwhile
    this.emit(this.visible(p) ? { event: 'peer.changed', peer: this.info(p) } : { event: 'peer.removed', id: p.id });
  }

  /** Remembers p if it is paired or added by hand, forgets it otherwise. */
  save(p: Peer): void {
    if (!p.paired && !p.manual) {
      if (this.store.get(p.id)) this.store.unpair(p.id);
      return;
    }
    this.store.update(p.id, { name: p.name, paired: p.paired, manual: p.manual, lastSeen: p.lastSeen ?? null, addresses: p.addresses });
  }

  /** p is paired now (it keeps its name and addresses; the pairing is remembered). */
  markPaired(p: Peer): void {
    p.paired = true;
    p.warning = null;
    this.store.update(p.id, { name: p.name, paired: true, pairedAt: Date.now(), manual: p.manual, addresses: p.addresses, lastSeen: Date.now() });
  }

  markUnpaired(p: Peer): void {
    p.paired = false;
    p.kernel = '';
    p.load = null;
    this.store.unpair(p.id);
  }

  /** Why p cannot be reached now, for error messages. */
  whyOffline(p: Peer): string {
    if (this.status.link(p.id) === 'connecting') return 'connecting';
    if (p.addresses.length === 0) return 'no address known: it has not been seen on this network';
    return `last tried ${p.addresses[0]}`;
  }

  /**
   * The impostor check: p calls itself `name`, which a paired machine with another certificate
   * bears. If so p is flagged (`verdict` says what becomes of it) and the check says true. A
   * paired p is never an impostor: its certificate is the one it paired with.
   */
  flagImpostor(p: Peer, name: string, verdict: 'refused' | 'not trusted'): boolean {
    if (p.paired) return false;
    const namesake = this.all().find((q) => q.paired && q.id !== p.id && q.name === name);
    if (!namesake) return false;
    p.name = name;
    p.warning = `presents another certificate under the name "${name}" of a paired machine (${shortDeviceId(namesake.id)}): ${verdict}`;
    this.log(`refusing ${shortDeviceId(p.id)}: ${p.warning}`);
    return true;
  }

  /** A link came up: takes what the machine says about itself in its HELLO. */
  linked(p: Peer, hello: PeerAbout & { name: string }): void {
    p.name = hello.name;
    learn(p, hello);
    p.lastSeen = Date.now();
  }

  /** A paired machine's `about`: what it tells only the machines it is paired with. */
  learnAbout(p: Peer, about: PairedAbout): void {
    p.kernel = about.kernel;
    p.load = about.load;
  }

  /** mDNS found (or heard again from) a machine: takes what it says and where it answers. */
  discovered(d: DiscoveredPeer): Peer {
    const p = this.peer(d.id);
    p.mdnsPresent = true;
    p.lastSeen = Date.now();
    learn(p, d);
    this.flagImpostor(p, d.name, 'not trusted');
    p.name = d.name;
    // Where it answers from now first (a laptop that changed networks), older addresses after.
    p.addresses = [...d.addresses, ...p.addresses.filter((a) => !d.addresses.includes(a))].slice(0, MAX_ADDRESSES);
    this.changed(p);
    return p;
  }

  /** mDNS lost a machine (it said goodbye, or stopped answering). */
  undiscovered(id: string, why: 'goodbye' | 'silent'): void {
    const p = this.peers.get(id);
    if (!p) return;
    p.mdnsPresent = false;
    p.lastSeen = Date.now();
    this.log(`${p.name} ${why === 'goodbye' ? 'said goodbye' : 'stopped answering'}`);
    this.changed(p);
  }
}

/** Takes what a machine says about itself (from discovery or its HELLO). */
function learn(p: Peer, about: PeerAbout): void {
  p.os = about.os;
  p.arch = about.arch;
  p.version = about.version;
}

/** Whether `ref` (4 characters or more) starts a device id, in hex or in its short form. */
function idStartsWith(id: string, ref: string): boolean {
  const key = ref.toLowerCase().replace(/-/g, '');
  return key.length >= 4 && (id.startsWith(key) || shortDeviceId(id).replace(/-/g, '').toLowerCase().startsWith(key));
}
