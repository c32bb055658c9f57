/**
 * Pairing (KDE Connect's shape): one side asks, both show a six-digit code derived from both
 * certificates, the user on the other side accepts with that code. Only the side that asked
 * trusts an acceptance; before pairing a peer can do nothing but ask, PAIR_REQUESTS_PER_PEER
 * times a minute (PAIR_REQUESTS_TOTAL for all peers together), and a code typed wrong
 * WRONG_CODES_ALLOWED times rejects the request.
 *
 * The pairing works on the registry's records and talks to the peer through PairingLinks
 * (link-manager.ts): the link to a peer, and trusting or no longer trusting it.
 */
import { VosError } from '../../api/errors.js';
import type { PairingState, PeerInfo } from '../../api/protocol.js';
import { normalizeCode, shortDeviceId, verificationCode } from '../../base/device-id.js';
import { cleanPeerText } from '../../base/peer-text.js';
import type { Peer, PeerRegistry } from './peer-registry.js';

export const PAIRING_TIMEOUT_MS = 120_000;
export const WRONG_CODES_ALLOWED = 3;
/** Pairing requests a peer may make per minute, and all peers together. */
export const PAIR_REQUESTS_PER_PEER = 3;
export const PAIR_REQUESTS_TOTAL = 20;

/** What pairing needs of a peer's link. */
export interface PairingLink {
  /** The certificate the peer showed (the code is derived from it and this machine's). */
  readonly peerCertDer: Uint8Array;
  sendControl(message: Record<string, unknown>): void;
}

/** What pairing needs of the links (link-manager.ts). */
export interface PairingLinks {
  /** The link to p, dialed if needed; a VosError when p cannot be reached. */
  linkTo(p: Peer): Promise<PairingLink>;
  /** p's link if it is up. */
  current(id: string): PairingLink | null;
  /** p is paired now: its link carries the API. */
  trust(p: Peer): void;
  /** p is no longer paired. */
  untrust(p: Peer): void;
  /** Counts a message refused from p (too many close its link). */
  refuse(p: Peer, link: PairingLink, what: string): void;
}

export interface PairingOptions {
  /** This machine's id and certificate (half of every code). */
  self: { id: string; name: string; certDer: Uint8Array };
  log: (message: string) => void;
}

interface Pairing extends PairingState {
  timer: NodeJS.Timeout;
  wrongCodes: number;
  waiters: Array<{ resolve: (p: PeerInfo) => void; reject: (e: VosError) => void }>;
}

export class Pairings {
  private readonly pairings = new Map<string, Pairing>();
  /** How the last pairing asked for ended, for a `pair.wait` that comes after the answer. */
  private readonly outcomes = new Map<string, { error: VosError; at: number }>();
  /** Pairing requests in the last minute (timestamps), per peer and from all. */
  private readonly requests = new Map<string, number[]>();
  private requestTimes: number[] = [];

  constructor(
    private readonly options: PairingOptions,
    private readonly registry: PeerRegistry,
    private readonly links: PairingLinks,
  ) {}

  /** The pairing in progress with peer `id`, as clients see it. */
  state(id: string): PairingState | null {
    return this.pairings.get(id) ?? null;
  }

  async request(ref: string): Promise<{ peer: PeerInfo; code: string }> {
    const p = this.registry.find(ref);
    if (p.paired) throw new VosError('invalid_params', `${p.name} is paired already`);
    if (p.warning) throw new VosError('refused', `${p.name}: ${p.warning}`);
    const link = await this.links.linkTo(p);
    let pairing = this.pairings.get(p.id);
    if (pairing?.direction === 'incoming') {
      throw new VosError('invalid_params', `${p.name} asked to pair with this machine already: accept it with its code (vos pair accept)`);
    }
    if (!pairing) {
      this.outcomes.delete(p.id);
      pairing = this.begin(p, 'outgoing', verificationCode(this.options.self.certDer, link.peerCertDer));
      link.sendControl({ t: 'pair-request', name: this.options.self.name });
      this.registry.changed(p);
    }
    return { peer: this.registry.info(p), code: pairing.code };
  }

  wait(ref: string, timeoutMs: number): Promise<PeerInfo> {
    const p = this.registry.find(ref);
    if (p.paired) return Promise.resolve(this.registry.info(p));
    const pairing = this.pairings.get(p.id);
    if (!pairing || pairing.direction !== 'outgoing') {
      const outcome = this.outcomes.get(p.id);
      if (outcome && Date.now() - outcome.at < PAIRING_TIMEOUT_MS) return Promise.reject(outcome.error);
      return Promise.reject(new VosError('invalid_params', `no pairing with ${p.name} was asked for (vos pair ${p.name})`));
    }
    return new Promise<PeerInfo>((resolve, reject) => {
      const timer = setTimeout(() => {
        pairing.waiters = pairing.waiters.filter((w) => w.resolve !== done);
        reject(new VosError('timeout', `${p.name} did not answer within ${Math.round(timeoutMs / 1000)} s; the request stays open until it expires`));
      }, timeoutMs);
      const done = (info: PeerInfo): void => {
        clearTimeout(timer);
        resolve(info);
      };
      pairing.waiters.push({
        resolve: done,
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  pending(): PeerInfo[] {
    return this.registry
      .all()
      .filter((p) => this.pairings.has(p.id))
      .map((p) => this.registry.info(p));
  }

  accept(ref: string, code: string): PeerInfo {
    const p = this.registry.find(ref);
    const pairing = this.pairings.get(p.id);
    if (!pairing || pairing.direction !== 'incoming') throw new VosError('invalid_params', `${p.name} has not asked to pair`);
    const link = this.links.current(p.id);
    if (!link) {
      this.end(p, new VosError('peer_offline', `${p.name} went away`));
      throw new VosError('peer_offline', `${p.name} is not connected any more; ask it to request pairing again`);
    }
    if (normalizeCode(code) !== pairing.code) {
      pairing.wrongCodes++;
      if (pairing.wrongCodes >= WRONG_CODES_ALLOWED) {
        link.sendControl({ t: 'pair-reject', reason: 'the code was typed wrong too often' });
        this.end(p, null);
        throw new VosError('wrong_code', `the code does not match the one this machine shows for ${p.name}; the request is rejected after ${WRONG_CODES_ALLOWED} tries`);
      }
      throw new VosError('wrong_code', `the code does not match the one this machine shows for ${p.name} (${WRONG_CODES_ALLOWED - pairing.wrongCodes} tries left): check that you accept the machine you mean`);
    }
    link.sendControl({ t: 'pair-accept' });
    this.becomePaired(p);
    return this.registry.info(p);
  }

  reject(ref: string): PeerInfo {
    const p = this.registry.find(ref);
    const pairing = this.pairings.get(p.id);
    if (!pairing) throw new VosError('invalid_params', `no pairing with ${p.name} is in progress`);
    this.links.current(p.id)?.sendControl({ t: pairing.direction === 'incoming' ? 'pair-reject' : 'pair-cancel', reason: 'the user declined' });
    this.end(p, new VosError('pair_rejected', 'cancelled on this machine'));
    return this.registry.info(p);
  }

  unpair(ref: string): PeerInfo {
    const p = this.registry.find(ref);
    if (!p.paired) throw new VosError('not_paired', `${p.name} is not paired with this machine`);
    this.links.current(p.id)?.sendControl({ t: 'unpair' });
    this.forget(p, 'unpaired on this machine');
    return this.registry.info(p);
  }

  /** A CONTROL message from p: pairing's part of the link protocol. */
  control(p: Peer, link: PairingLink, m: Record<string, unknown>): void {
    const outgoing = this.pairings.get(p.id)?.direction === 'outgoing';
    switch (m.t) {
      case 'pair-request':
        return this.requested(p, link);
      case 'pair-accept':
        if (outgoing) this.becomePaired(p);
        return; // an acceptance nobody asked for is ignored: only the asking side trusts one
      case 'pair-reject':
        if (outgoing) this.end(p, new VosError('pair_rejected', `${p.name} rejected the pairing: ${reasonOf(m)}`));
        return;
      case 'pair-cancel':
        if (this.pairings.get(p.id)?.direction === 'incoming') this.end(p, null);
        return;
      case 'refused': {
        const why = reasonOf(m);
        this.options.log(`${p.name} refused: ${why}`);
        if (outgoing) this.end(p, new VosError('refused', `${p.name} refused: ${why}`));
        return;
      }
      case 'unpair':
        if (p.paired) this.forget(p, `${p.name} unpaired`);
        return;
      default:
        return this.links.refuse(p, link, `unknown control message ${JSON.stringify(String(m.t)).slice(0, 40)}`);
    }
  }

  /** p's link closed: a pairing in progress with it ends. */
  linkClosed(p: Peer, reason: string): void {
    if (this.pairings.has(p.id)) this.end(p, new VosError('peer_offline', `the link to ${p.name} closed (${reason})`));
  }

  /** The agent is stopping: every pairing in progress ends. */
  stop(): void {
    for (const p of this.registry.all()) this.end(p, new VosError('connection_closed', 'the agent is stopping'));
  }

  private requested(p: Peer, link: PairingLink): void {
    if (!this.allowRequest(p.id)) {
      link.sendControl({ t: 'refused', reason: 'too many pairing requests: try again in a minute' });
      return this.links.refuse(p, link, 'pairing requests over the limit');
    }
    if (p.paired) {
      // It proved it holds the paired key (TLS): it lost its side of the pairing. Re-confirm.
      link.sendControl({ t: 'pair-accept' });
      return;
    }
    if (this.pairings.get(p.id)?.direction === 'outgoing') {
      // Both asked at once: the side with the lower id gives way and answers the other's request.
      if (this.options.self.id < p.id) {
        this.end(p, new VosError('refused', `${p.name} asked at the same time; accept its request instead`));
      } else {
        return;
      }
    }
    if (this.pairings.has(p.id)) return; // asked already: the same code is showing
    const code = verificationCode(this.options.self.certDer, link.peerCertDer);
    this.begin(p, 'incoming', code);
    this.options.log(`${p.name} (${shortDeviceId(p.id)}) asks to pair; code ${code}`);
    this.registry.emit({ event: 'pair.requested', peer: this.registry.info(p), code });
    this.registry.changed(p);
  }

  /** The rate limit: counts a request from peer `id` if it is within the limits. */
  private allowRequest(id: string): boolean {
    const now = Date.now();
    const mine = (this.requests.get(id) ?? []).filter((t) => now - t < 60_000);
    this.requests.set(id, mine);
    this.requestTimes = this.requestTimes.filter((t) => now - t < 60_000);
    if (mine.length >= PAIR_REQUESTS_PER_PEER || this.requestTimes.length >= PAIR_REQUESTS_TOTAL) return false;
    mine.push(now);
    this.requestTimes.push(now);
    return true;
  }

  private begin(p: Peer, direction: 'outgoing' | 'incoming', code: string): Pairing {
    const timer = setTimeout(() => {
      this.links.current(p.id)?.sendControl({ t: direction === 'incoming' ? 'pair-reject' : 'pair-cancel', reason: 'nobody answered in time' });
      this.end(p, new VosError('timeout', `the pairing with ${p.name} expired after ${PAIRING_TIMEOUT_MS / 1000} s`));
    }, PAIRING_TIMEOUT_MS);
    timer.unref();
    const pairing: Pairing = { direction, code, since: Date.now(), timer, wrongCodes: 0, waiters: [] };
    this.pairings.set(p.id, pairing);
    return pairing;
  }

  /** Ends a pairing in progress: waiters get `error`, or nothing happened (null: quietly). */
  private end(p: Peer, error: VosError | null): void {
    const pairing = this.pairings.get(p.id);
    if (!pairing) return;
    this.pairings.delete(p.id);
    clearTimeout(pairing.timer);
    const why = error ?? new VosError('pair_rejected', 'the pairing was cancelled');
    if (pairing.direction === 'outgoing') this.outcomes.set(p.id, { error: why, at: Date.now() });
    for (const w of pairing.waiters) w.reject(why);
    this.registry.changed(p);
  }

  private becomePaired(p: Peer): void {
    const pairing = this.pairings.get(p.id);
    this.pairings.delete(p.id);
    if (pairing) clearTimeout(pairing.timer);
    this.registry.markPaired(p);
    this.options.log(`paired with ${p.name} (${shortDeviceId(p.id)})`);
    this.links.trust(p);
    const info = this.registry.info(p);
    for (const w of pairing?.waiters ?? []) w.resolve(info);
    this.registry.changed(p);
  }

  private forget(p: Peer, why: string): void {
    this.registry.markUnpaired(p);
    this.links.untrust(p);
    this.options.log(`pairing with ${p.name} forgotten: ${why}`);
    this.registry.changed(p);
  }
}

/** The reason a peer gives in a CONTROL message, cut short. */
function reasonOf(m: Record<string, unknown>): string {
  return cleanPeerText(m.reason, 200) || 'no reason given';
}
