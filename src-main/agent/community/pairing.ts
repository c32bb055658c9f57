/**
 * Pairing (KDE Connect's shape, with a commit-then-reveal code): one side asks, both show a
 * six-digit code and the short ids of both machines, and both users confirm it: the user on the
 * side asked accepts with that code (`pair-accept` goes to the asking side), the user on the
 * asking side confirms that the other machine shows the same code (`pair-confirm` goes to the
 * side asked). Each side trusts the other once both confirmations are in, in either order; a
 * refusal, a cancel, a code that differs or the timeout ends the pairing on both sides.
 *
 * Why both: a machine in the middle can answer the asking side's request itself, and then say
 * `pair-accept` as easily as an honest peer. Only the asking user's comparison with the code
 * the real peer shows keeps it out of the asking machine.
 *
 * The code is a short authentication string (pairing-sas.ts): the requester sends a commitment
 * to its nonce (`pair-request`), the responder answers with its own nonce (`pair-nonce`, only
 * once it holds the commitment), the requester reveals its nonce (`pair-reveal`), the responder
 * checks it against the commitment (a mismatch aborts the pairing), and both derive the code
 * from both nonces and both device ids. A machine in the middle must fix its nonce before it
 * sees the other's, so it gets one guess in 10^6 per attempt. Each step must come within
 * EXCHANGE_TIMEOUT_MS; every field is checked.
 *
 * Before pairing a peer can do nothing but ask: PAIR_REQUESTS_PER_PEER times a minute,
 * PAIR_REQUESTS_PER_ADDRESS from one network address (so fresh identities from one place
 * cannot use up the PAIR_REQUESTS_TOTAL for all), and a code typed wrong WRONG_CODES_ALLOWED
 * times rejects the request.
 *
 * The pairing works on the registry's records and talks to the peer through PairingLinks
 * (link-manager.ts): the link to a peer, and trusting or no longer trusting it.
 */
import { VosError } from '../../api/errors.js';
import type { PairingState, PeerInfo } from '../../api/protocol.js';
import { deviceIdOf, normalizeCode, shortDeviceId } from '../../base/device-id.js';
import { commitmentHolds, isHex256, pairingCode, pairingCommitment, pairingNonce } from '../../base/pairing-sas.js';
import { cleanPeerText } from '../../base/peer-text.js';
import type { Peer, PeerRegistry } from './peer-registry.js';

export const PAIRING_TIMEOUT_MS = 120_000;
export const WRONG_CODES_ALLOWED = 3;
/** Each step of the nonce exchange (nonce after commitment, reveal after nonce) must come this soon. */
export const EXCHANGE_TIMEOUT_MS = 10_000;
/** Pairing requests per minute: from a peer, from one address (any number of peers), from all. */
export const PAIR_REQUESTS_PER_PEER = 3;
export const PAIR_REQUESTS_PER_ADDRESS = 5;
export const PAIR_REQUESTS_TOTAL = 20;

/** What pairing needs of a peer's link. */
export interface PairingLink {
  /** The certificate the peer showed (its hash, the device id, goes into the code). */
  readonly peerCertDer: Uint8Array;
  /** Where the link comes from (host:port, [v6]:port), for the per-address limit. */
  readonly remoteAddress: string;
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
  /** This machine's id (half of every code). */
  self: { id: string; name: string };
  log: (message: string) => void;
}

interface Pairing extends PairingState {
  timer: NodeJS.Timeout;
  wrongCodes: number;
  waiters: Array<{ resolve: (p: PeerInfo) => void; reject: (e: VosError) => void }>;
}

/**
 * The nonce exchange before a pairing shows its code. The requester waits for the responder's
 * nonce (it holds its own, committed to); the responder waits for the reveal (it holds the
 * commitment and its own nonce, sent).
 */
type Exchange =
  | { role: 'requester'; nonce: string; timer: NodeJS.Timeout; settle: (e: VosError | null) => void }
  | { role: 'responder'; commitment: string; nonce: string; timer: NodeJS.Timeout };

export class Pairings {
  private readonly pairings = new Map<string, Pairing>();
  private readonly exchanges = new Map<string, Exchange>();
  /** How the last pairing asked for ended, for a `pair.wait` that comes after the answer. */
  private readonly outcomes = new Map<string, { error: VosError; at: number }>();
  /** Pairing requests taken in the last minute (timestamps), per peer, per address, and from all. */
  private readonly perPeer = new Map<string, number[]>();
  private readonly perAddress = new Map<string, number[]>();
  private requestTimes: number[] = [];

  constructor(
    private readonly options: PairingOptions,
    private readonly registry: PeerRegistry,
    private readonly links: PairingLinks,
  ) {}

  /** Whether a pairing with peer `id` is in progress, its nonces being exchanged or its code showing. */
  busy(id: string): boolean {
    return this.pairings.has(id) || this.exchanges.has(id);
  }

  /** The pairing in progress with peer `id`, as clients see it (once its code is known). */
  state(id: string): PairingState | null {
    return this.pairings.get(id) ?? null;
  }

  async request(ref: string): Promise<{ peer: PeerInfo; code: string }> {
    const p = this.registry.find(ref);
    if (p.paired) throw new VosError('invalid_params', `${p.name} is paired already`);
    if (p.warning) throw new VosError('refused', `${p.name}: ${p.warning}`);
    const link = await this.links.linkTo(p);
    const existing = this.pairings.get(p.id);
    if (existing?.direction === 'incoming' || this.exchanges.get(p.id)?.role === 'responder') {
      throw new VosError('invalid_params', `${p.name} asked to pair with this machine already: accept it with its code (vos pair accept)`);
    }
    if (!existing) {
      await this.exchangeAsRequester(p, link);
    }
    const pairing = this.pairings.get(p.id);
    if (!pairing) throw new VosError('pair_rejected', `the pairing with ${p.name} ended before its code was shown`);
    return { peer: this.registry.info(p), code: pairing.code };
  }

  /**
   * The asking side's user says the peer shows `code` (this machine's code for the pairing):
   * `pair-confirm` goes to the peer, and the peer is trusted once its user accepted too. Any
   * other code ends the pairing on both sides: the user saw another code there.
   */
  confirm(ref: string, code: string): PeerInfo {
    const p = this.registry.find(ref);
    if (p.paired) return this.registry.info(p);
    const pairing = this.pairings.get(p.id);
    if (!pairing || pairing.direction !== 'outgoing') {
      throw new VosError('invalid_params', `this machine has not asked ${p.name} to pair (vos pair ${p.name}), or the request ended`);
    }
    const link = this.links.current(p.id);
    if (!link) {
      this.end(p, new VosError('peer_offline', `${p.name} went away`));
      throw new VosError('peer_offline', `${p.name} is not connected any more; ask again (vos pair ${p.name})`);
    }
    if (normalizeCode(code) !== pairing.code) {
      link.sendControl({ t: 'pair-cancel', reason: 'the code differs on the asking machine' });
      const error = new VosError(
        'wrong_code',
        `${p.name} shows another code than this machine: the pairing is cancelled on both sides (another machine may be answering in its place; check that you asked the machine you mean, and ask again)`,
      );
      this.end(p, error);
      this.options.log(`pairing with ${p.name} (${shortDeviceId(p.id)}) cancelled: its user saw another code there`);
      throw error;
    }
    if (!pairing.confirmed) {
      pairing.confirmed = true;
      link.sendControl({ t: 'pair-confirm' });
    }
    if (pairing.peerConfirmed) this.becomePaired(p);
    else this.registry.changed(p);
    return this.registry.info(p);
  }

  /** Resolves when the pairing in progress with the peer is done: both users confirmed its code. */
  wait(ref: string, timeoutMs: number): Promise<PeerInfo> {
    const p = this.registry.find(ref);
    if (p.paired) return Promise.resolve(this.registry.info(p));
    const pairing = this.pairings.get(p.id);
    if (!pairing) {
      const outcome = this.outcomes.get(p.id);
      if (outcome && Date.now() - outcome.at < PAIRING_TIMEOUT_MS) return Promise.reject(outcome.error);
      return Promise.reject(new VosError('invalid_params', `no pairing with ${p.name} is in progress (vos pair ${p.name})`));
    }
    return new Promise<PeerInfo>((resolve, reject) => {
      const timer = setTimeout(() => {
        pairing.waiters = pairing.waiters.filter((w) => w.resolve !== done);
        const who = pairing.confirmed ? `${p.name}'s user did not ${pairing.direction === 'outgoing' ? 'accept' : 'confirm'} the code` : 'the code was not confirmed here';
        reject(new VosError('timeout', `${who} within ${Math.round(timeoutMs / 1000)} s; the request stays open until it expires`));
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
    if (!pairing.confirmed) {
      pairing.confirmed = true;
      link.sendControl({ t: 'pair-accept' });
    }
    // Trusted once the asking side's user confirmed the code there too (pair-confirm).
    if (pairing.peerConfirmed) this.becomePaired(p);
    else this.registry.changed(p);
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
    const outgoing = this.pairings.get(p.id)?.direction === 'outgoing' || this.exchanges.get(p.id)?.role === 'requester';
    const incoming = this.pairings.get(p.id)?.direction === 'incoming' || this.exchanges.get(p.id)?.role === 'responder';
    switch (m.t) {
      case 'pair-request':
        return this.requested(p, link, m);
      case 'pair-nonce':
        return this.nonceReceived(p, link, m);
      case 'pair-reveal':
        return this.revealed(p, link, m);
      case 'pair-accept':
        return this.peerConfirmed(p, link, 'outgoing', 'an acceptance');
      case 'pair-confirm':
        return this.peerConfirmed(p, link, 'incoming', 'a confirmation');
      case 'pair-reject':
        if (outgoing) this.end(p, new VosError('pair_rejected', `${p.name} rejected the pairing: ${reasonOf(m)}`));
        return;
      case 'pair-cancel':
        if (incoming) this.end(p, new VosError('pair_rejected', `${p.name} cancelled the pairing: ${reasonOf(m)}`));
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

  /**
   * The peer says its user confirmed the code (`pair-accept` to the asking side, `pair-confirm`
   * to the side asked). Taken only while this side shows a code in that direction: a peer that
   * accepts before the code is known, or that nobody asked, is refused. Trust needs this
   * side's user too: a machine in the middle can send these messages as well as anyone.
   */
  private peerConfirmed(p: Peer, link: PairingLink, direction: 'outgoing' | 'incoming', what: string): void {
    const pairing = this.pairings.get(p.id);
    if (pairing?.direction !== direction) return this.links.refuse(p, link, `${what} of a pairing that is not in progress`);
    pairing.peerConfirmed = true;
    if (pairing.confirmed) this.becomePaired(p);
    else this.registry.changed(p);
  }

  /** p's link closed: a pairing in progress with it ends. */
  linkClosed(p: Peer, reason: string): void {
    if (this.pairings.has(p.id) || this.exchanges.has(p.id)) this.end(p, new VosError('peer_offline', `the link to ${p.name} closed (${reason})`));
  }

  /** The agent is stopping: every pairing in progress ends. */
  stop(): void {
    for (const p of this.registry.all()) this.end(p, new VosError('connection_closed', 'the agent is stopping'));
  }

  /**
   * The requester's side of the exchange: commits to a nonce, waits for the responder's nonce,
   * reveals its own; resolves when the outgoing pairing shows its code (nonceReceived).
   */
  private exchangeAsRequester(p: Peer, link: PairingLink): Promise<void> {
    const waiting = this.exchanges.get(p.id);
    if (waiting?.role === 'requester') {
      // Asked already and waiting for the nonce: wait with the first request.
      return new Promise<void>((resolve, reject) => {
        const first = waiting.settle;
        waiting.settle = (e) => {
          first(e);
          if (e) reject(e);
          else resolve();
        };
      });
    }
    this.outcomes.delete(p.id);
    const nonce = pairingNonce();
    const peerId = deviceIdOf(link.peerCertDer);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        link.sendControl({ t: 'pair-cancel', reason: `no nonce came within ${EXCHANGE_TIMEOUT_MS / 1000} s` });
        this.end(p, new VosError('timeout', `${p.name} did not answer the pairing request within ${EXCHANGE_TIMEOUT_MS / 1000} s`));
      }, EXCHANGE_TIMEOUT_MS);
      timer.unref();
      this.exchanges.set(p.id, { role: 'requester', nonce, timer, settle: (e) => (e ? reject(e) : resolve()) });
      link.sendControl({ t: 'pair-request', name: this.options.self.name, commit: pairingCommitment(nonce, this.options.self.id, peerId) });
    });
  }

  /** The responder's nonce came (requester): reveal ours, and the code is known. */
  private nonceReceived(p: Peer, link: PairingLink, m: Record<string, unknown>): void {
    const exchange = this.exchanges.get(p.id);
    if (exchange?.role !== 'requester') return this.links.refuse(p, link, 'a pairing nonce nobody asked for');
    if (!isHex256(m.nonce)) {
      link.sendControl({ t: 'pair-cancel', reason: 'malformed pair-nonce' });
      this.end(p, new VosError('refused', `${p.name} sent a malformed pairing nonce: the pairing is aborted`));
      return this.links.refuse(p, link, 'a malformed pair-nonce');
    }
    const peerId = deviceIdOf(link.peerCertDer);
    this.exchanges.delete(p.id);
    clearTimeout(exchange.timer);
    link.sendControl({ t: 'pair-reveal', nonce: exchange.nonce });
    this.begin(p, 'outgoing', pairingCode(this.options.self.id, peerId, exchange.nonce, m.nonce), { requester: this.options.self.id, responder: peerId });
    this.registry.changed(p);
    exchange.settle(null);
  }

  private requested(p: Peer, link: PairingLink, m: Record<string, unknown>): void {
    if (!this.allowRequest(p.id, link.remoteAddress)) {
      link.sendControl({ t: 'refused', reason: 'too many pairing requests: try again in a minute' });
      return this.links.refuse(p, link, 'pairing requests over the limit');
    }
    if (p.paired) {
      // It proved it holds the paired key (TLS): it lost its side of the pairing. Both users
      // confirm again (its side cannot trust an acceptance without a code).
      this.forget(p, `${p.name} asked to pair again (it no longer holds the pairing)`);
    }
    if (!isHex256(m.commit)) {
      link.sendControl({ t: 'refused', reason: 'a pair-request needs a commitment (64 hex digits): this agent speaks pairing v2' });
      return this.links.refuse(p, link, 'a pair-request without a valid commitment');
    }
    if (this.pairings.get(p.id)?.direction === 'outgoing' || this.exchanges.get(p.id)?.role === 'requester') {
      // Both asked at once: the side with the lower id gives way and answers the other's request.
      if (this.options.self.id < p.id) {
        this.end(p, new VosError('refused', `${p.name} asked at the same time; accept its request instead`));
      } else {
        return;
      }
    }
    // A new request replaces one in progress (its requester starts over with a new nonce, so
    // the code changes): each is one guess for a machine in the middle, and they are rate-limited.
    if (this.pairings.has(p.id) || this.exchanges.has(p.id)) this.end(p, null);
    const nonce = pairingNonce();
    const timer = setTimeout(() => {
      this.links.current(p.id)?.sendControl({ t: 'pair-reject', reason: `no reveal came within ${EXCHANGE_TIMEOUT_MS / 1000} s` });
      this.end(p, null);
    }, EXCHANGE_TIMEOUT_MS);
    timer.unref();
    // Our nonce goes out only now that the commitment is held: the requester cannot change its
    // nonce after seeing ours.
    this.exchanges.set(p.id, { role: 'responder', commitment: m.commit, nonce, timer });
    link.sendControl({ t: 'pair-nonce', nonce });
  }

  /** The requester revealed its nonce (responder): check it, then show the code. */
  private revealed(p: Peer, link: PairingLink, m: Record<string, unknown>): void {
    const exchange = this.exchanges.get(p.id);
    if (exchange?.role !== 'responder') return this.links.refuse(p, link, 'a pairing reveal nobody asked for');
    const peerId = deviceIdOf(link.peerCertDer);
    if (!isHex256(m.nonce) || !commitmentHolds(exchange.commitment, m.nonce, peerId, this.options.self.id)) {
      const why = isHex256(m.nonce) ? 'the revealed nonce does not match its commitment' : 'a malformed pair-reveal';
      link.sendControl({ t: 'pair-reject', reason: `${why}: pairing aborted` });
      this.end(p, null);
      this.options.log(`pairing with ${p.name} (${shortDeviceId(p.id)}) aborted: ${why} (a machine in the middle, or a broken peer)`);
      return this.links.refuse(p, link, why);
    }
    this.exchanges.delete(p.id);
    clearTimeout(exchange.timer);
    const shortIds = { requester: peerId, responder: this.options.self.id };
    const pairing = this.begin(p, 'incoming', pairingCode(peerId, this.options.self.id, m.nonce, exchange.nonce), shortIds);
    this.options.log(`${p.name} (${shortDeviceId(p.id)}) asks to pair; code ${pairing.code}`);
    this.registry.emit({ event: 'pair.requested', peer: this.registry.info(p), code: pairing.code });
    this.registry.changed(p);
  }

  /** The rate limits: counts a request from peer `id` at `remote` if it is within all of them. */
  private allowRequest(id: string, remote: string): boolean {
    const now = Date.now();
    const recent = (times: number[] | undefined): number[] => (times ?? []).filter((t) => now - t < 60_000);
    const source = sourceOf(remote);
    const mine = recent(this.perPeer.get(id));
    const fromThere = recent(this.perAddress.get(source));
    this.requestTimes = recent(this.requestTimes);
    // Keys with nothing in the last minute go, so fresh identities leave nothing behind.
    for (const map of [this.perPeer, this.perAddress]) {
      for (const [key, times] of map) if (!times.some((t) => now - t < 60_000)) map.delete(key);
    }
    if (mine.length >= PAIR_REQUESTS_PER_PEER || fromThere.length >= PAIR_REQUESTS_PER_ADDRESS || this.requestTimes.length >= PAIR_REQUESTS_TOTAL) return false;
    this.perPeer.set(id, [...mine, now]);
    this.perAddress.set(source, [...fromThere, now]);
    this.requestTimes.push(now);
    return true;
  }

  private begin(p: Peer, direction: 'outgoing' | 'incoming', code: string, ids: { requester: string; responder: string }): Pairing {
    const timer = setTimeout(() => {
      this.links.current(p.id)?.sendControl({ t: direction === 'incoming' ? 'pair-reject' : 'pair-cancel', reason: 'nobody answered in time' });
      this.end(p, new VosError('timeout', `the pairing with ${p.name} expired after ${PAIRING_TIMEOUT_MS / 1000} s`));
    }, PAIRING_TIMEOUT_MS);
    timer.unref();
    const shortIds = { requester: shortDeviceId(ids.requester), responder: shortDeviceId(ids.responder) };
    const pairing: Pairing = { direction, code, shortIds, confirmed: false, peerConfirmed: false, since: Date.now(), timer, wrongCodes: 0, waiters: [] };
    this.pairings.set(p.id, pairing);
    return pairing;
  }

  /** Ends a pairing in progress: waiters get `error`, or nothing happened (null: quietly). */
  private end(p: Peer, error: VosError | null): void {
    const why = error ?? new VosError('pair_rejected', 'the pairing was cancelled');
    const exchange = this.exchanges.get(p.id);
    if (exchange) {
      this.exchanges.delete(p.id);
      clearTimeout(exchange.timer);
      if (exchange.role === 'requester') {
        this.noteOutcome(p.id, why);
        exchange.settle(why);
      }
    }
    const pairing = this.pairings.get(p.id);
    if (!pairing) return;
    this.pairings.delete(p.id);
    clearTimeout(pairing.timer);
    this.noteOutcome(p.id, why);
    for (const w of pairing.waiters) w.reject(why);
    this.registry.changed(p);
  }

  /** Keeps how a pairing ended for a late `pair.wait`, for as long as a pairing could have lasted. */
  private noteOutcome(id: string, error: VosError): void {
    const now = Date.now();
    for (const [key, o] of this.outcomes) if (now - o.at >= PAIRING_TIMEOUT_MS) this.outcomes.delete(key);
    this.outcomes.set(id, { error, at: now });
  }

  /** Both users confirmed the code (the exchange is over: a pairing shows its code). */
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

/**
 * The source a request is counted against: the host of `host:port` / `[v6]:port`; an IPv4
 * address mapped into IPv6 is the IPv4 address, an IPv6 address its /64 (one machine commonly
 * holds a whole /64).
 */
export function sourceOf(remote: string): string {
  const bracketed = /^\[(.*)\]:\d+$/.exec(remote);
  const host = bracketed ? bracketed[1]! : remote.replace(/:\d+$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  if (mapped) return mapped[1]!;
  if (!host.includes(':')) return host;
  const [head = '', tail = ''] = host.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = host.includes('::') ? [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}
