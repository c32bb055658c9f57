/**
 * The machine community from this agent's side: who the other machines are (found by mDNS,
 * added by hand, remembered from earlier), which are paired, and the one link to each.
 *
 * - Peers are keyed by device id, never by address or name; addresses are hints, tried in
 *   turn. A paired peer (or one added by hand) is dialed again whenever its link is down, with
 *   a growing pause (RECONNECT_MAX_MS at most), so a network blip heals by itself.
 * - Pairing (KDE Connect's shape): one side asks, both show a code derived from both
 *   certificates, the user on the other side accepts with that code. Only the side that asked
 *   trusts an acceptance; before pairing a peer can do nothing but ask (rate-limited).
 * - A machine that shows another certificate under the name of a paired one is refused and
 *   reported (its entry carries a warning), never trusted in its place.
 * - Once paired, the link carries API channels (see channels.ts): the peer uses this agent's
 *   API with the rights PEER_METHODS gives it, and this agent uses the peer's.
 */
import { arch, loadavg, release, type } from 'node:os';
import { createServer, connect as tlsConnect, type Server, type TLSSocket } from 'node:tls';
import { VosError } from '../../api/errors.js';
import type { PeerInfo, PairingState } from '../../api/protocol.js';
import { normalizeCode, shortDeviceId, verificationCode } from '../../base/device-id.js';
import { packageVersion } from '../../base/package-paths.js';
import { ChannelHost, type ChannelServer } from './channels.js';
import { Discovery, type DiscoveredPeer } from './discovery.js';
import type { Identity } from './identity.js';
import { Link, LinkError, LINK_PROTOCOL_VERSION, establishLink, type LinkHello } from './link.js';
import type { IncomingStream, OutgoingStream } from './link-streams.js';
import { PeerStore } from './peer-store.js';
import { parseHostPort, formatHostPort } from './addresses.js';

export const DEFAULT_PEER_PORT = 47470;
const DIAL_TIMEOUT_MS = 5_000;
const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 8_000;
const PAIRING_TIMEOUT_MS = 120_000;
const WRONG_CODES_ALLOWED = 3;
/** Pairing requests a peer may make per minute, and all peers together. */
const PAIR_REQUESTS_PER_PEER = 3;
const PAIR_REQUESTS_TOTAL = 20;
/** A machine gone from the network stays listed (offline, with when it was last seen) this long. */
const FORGET_UNSEEN_MS = 60 * 60_000;
/** Refused frames from an unpaired peer per minute before its link is closed. */
const REFUSALS_BEFORE_CLOSE = 30;

export interface CommunityOptions {
  identity: Identity;
  name: string;
  home: string;
  /** host:port to listen on for links; null: no listening (outgoing links only). */
  listen: { host: string; port: number } | null;
  mdns: boolean;
  log: (message: string) => void;
  /** A paired peer opened a byte stream (a migration's image); absent: streams are refused. */
  onStream?: (peer: { id: string; name: string }, stream: IncomingStream) => void;
}

interface Pairing extends PairingState {
  timer: NodeJS.Timeout;
  wrongCodes: number;
  waiters: Array<{ resolve: (p: PeerInfo) => void; reject: (e: VosError) => void }>;
}

/** What a machine says about itself (in mDNS TXT and in its HELLO). */
type PeerAbout = Pick<PeerInfo, 'os' | 'arch' | 'kernel' | 'version' | 'load'>;

/** A machine as this agent keeps it; `info()` derives what clients see. */
interface Peer extends PeerAbout, Pick<PeerInfo, 'id' | 'name' | 'addresses' | 'paired' | 'lastSeen'> {
  manual: boolean;
  mdnsPresent: boolean;
  link: Link | null;
  dialing: boolean;
  warning: string | null;
  pairing: Pairing | null;
  channels: ChannelHost | null;
  retryTimer: NodeJS.Timeout | null;
  retryDelay: number;
  /** How the last pairing asked for ended, for a `pair.wait` that comes after the answer. */
  pairingOutcome: { error: VosError; at: number } | null;
  /** Pairing requests from it in the last minute (timestamps). */
  requests: number[];
  refusals: number[];
}

export type PeerEvent =
  | { event: 'peer.changed'; peer: PeerInfo }
  | { event: 'peer.removed'; id: string }
  | { event: 'pair.requested'; peer: PeerInfo; code: string };

/** What the community needs from the agent: serving the API to a paired peer's channels. */
export interface ChannelServerFactory {
  (peer: { id: string; name: string }): ChannelServer;
}

export class Community {
  private readonly peers = new Map<string, Peer>();
  private readonly listeners = new Set<(e: PeerEvent) => void>();
  private readonly linkListeners = new Set<(peerId: string, up: boolean) => void>();
  private readonly store: PeerStore;
  private server: Server | null = null;
  private discovery: Discovery | null = null;
  private listenAddress: string | null = null;
  private stopped = false;
  private pairRequestTimes: number[] = [];
  private readonly sockets = new Set<TLSSocket>();

  constructor(
    private readonly options: CommunityOptions,
    private readonly serveChannels: ChannelServerFactory,
  ) {
    this.store = new PeerStore(options.home, options.log);
    for (const s of this.store.all()) {
      const p = this.peer(s.id);
      p.name = s.name;
      p.paired = s.paired;
      p.manual = s.manual;
      p.addresses = [...s.addresses];
      p.lastSeen = s.lastSeen;
    }
  }

  get id(): string {
    return this.options.identity.id;
  }

  get listening(): string | null {
    return this.listenAddress;
  }

  get mdnsEnabled(): boolean {
    return this.discovery !== null;
  }

  async start(): Promise<void> {
    const { listen } = this.options;
    if (listen) {
      const server = createServer(
        {
          key: this.options.identity.keyPem,
          cert: this.options.identity.certPem,
          requestCert: true,
          // Self-signed certificates: the device id (the certificate's hash) is checked in
          // establishLink and against the paired peers, not by a CA.
          rejectUnauthorized: false,
          minVersion: 'TLSv1.3',
          handshakeTimeout: DIAL_TIMEOUT_MS,
        },
        (socket) => void this.acceptSocket(socket),
      );
      server.on('tlsClientError', () => {
        /* a failed handshake (scanner, wrong protocol): nothing to do */
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(listen.port, listen.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      server.on('error', (err) => this.options.log(`peer listener: ${err.message}`));
      this.server = server;
      const addr = server.address();
      if (addr && typeof addr === 'object') this.listenAddress = formatHostPort(addr.address, addr.port);
    }
    if (this.options.mdns) {
      const port = this.listenPort();
      if (port > 0) {
        this.discovery = new Discovery(
          { ...this.helloInfo(), shortId: this.options.identity.shortId },
          port,
          { found: (p) => this.discovered(p), lost: (id, why) => this.undiscovered(id, why) },
          this.options.log,
        );
        this.discovery.start();
      }
    }
    for (const p of this.peers.values()) if (p.paired || p.manual) this.dialSoon(p, 0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.discovery?.stop();
    for (const p of this.peers.values()) {
      if (p.retryTimer) clearTimeout(p.retryTimer);
      if (p.pairing) this.endPairing(p, new VosError('connection_closed', 'the agent is stopping'));
      p.link?.close('the agent is stopping');
    }
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  onEvent(listener: (e: PeerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Called when a paired peer's API channels become usable (up) or stop being so. */
  onPeerLink(listener: (peerId: string, up: boolean) => void): () => void {
    this.linkListeners.add(listener);
    return () => this.linkListeners.delete(listener);
  }

  list(): PeerInfo[] {
    return [...this.peers.values()].filter((p) => this.visible(p)).map((p) => this.info(p));
  }

  /** A peer by id prefix (hex or short form) or exact name. */
  resolve(ref: string): PeerInfo {
    return this.info(this.find(ref));
  }

  /** The channel host of a paired peer whose link is up. */
  channelsFor(peerId: string): ChannelHost {
    const p = this.peers.get(peerId);
    if (!p || !p.paired) throw new VosError('not_paired', `${p?.name ?? peerId.slice(0, 12)} is not paired with this machine`);
    if (!p.channels || !p.link || p.link.isClosed) {
      throw new VosError('peer_offline', `${p.name} is not connected right now (${this.whyOffline(p)})`);
    }
    return p.channels;
  }

  /** A byte stream to a paired, connected peer (flow-controlled; see link-streams.ts). */
  openStream(peerId: string, meta: unknown): OutgoingStream {
    this.channelsFor(peerId); // paired and connected, or a clear error
    return this.peers.get(peerId)!.link!.openStream(meta);
  }

  /** Paired peers whose link is up. */
  connectedPeers(): Array<{ id: string; name: string }> {
    return [...this.peers.values()].filter((p) => p.paired && p.channels).map((p) => ({ id: p.id, name: p.name }));
  }

  /** `vos peer add HOST:PORT`: dials the address, remembers it for this peer. */
  async add(address: string): Promise<PeerInfo> {
    const target = parseHostPort(address, DEFAULT_PEER_PORT);
    const text = formatHostPort(target.host, target.port);
    let link: Link;
    try {
      link = await this.dialAddress(target.host, target.port);
    } catch (err) {
      throw new VosError('unreachable', `cannot link to ${text}: ${(err as Error).message}`);
    }
    const p = this.peer(link.peerId);
    p.manual = true;
    p.addresses = [text, ...p.addresses.filter((a) => a !== text)];
    this.adopt(link, p);
    this.save(p);
    return this.info(p);
  }

  // ---- pairing

  async requestPairing(ref: string): Promise<{ peer: PeerInfo; code: string }> {
    const p = this.find(ref);
    if (p.paired) throw new VosError('invalid_params', `${p.name} is paired already`);
    if (p.warning) throw new VosError('refused', `${p.name}: ${p.warning}`);
    const link = await this.linkTo(p);
    if (p.pairing?.direction === 'incoming') {
      throw new VosError('invalid_params', `${p.name} asked to pair with this machine already: accept it with its code (vos pair accept)`);
    }
    if (!p.pairing) {
      p.pairingOutcome = null;
      p.pairing = this.newPairing('outgoing', verificationCode(this.options.identity.certDer, link.peerCertDer), p);
      link.sendControl({ t: 'pair-request', name: this.options.name });
      this.changed(p);
    }
    return { peer: this.info(p), code: p.pairing.code };
  }

  waitPairing(ref: string, timeoutMs: number): Promise<PeerInfo> {
    const p = this.find(ref);
    if (p.paired) return Promise.resolve(this.info(p));
    const pairing = p.pairing;
    if (!pairing || pairing.direction !== 'outgoing') {
      const outcome = p.pairingOutcome;
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
    return [...this.peers.values()].filter((p) => p.pairing).map((p) => this.info(p));
  }

  accept(ref: string, code: string): PeerInfo {
    const p = this.find(ref);
    const pairing = p.pairing;
    if (!pairing || pairing.direction !== 'incoming') throw new VosError('invalid_params', `${p.name} has not asked to pair`);
    const link = p.link;
    if (!link || link.isClosed) {
      this.endPairing(p, new VosError('peer_offline', `${p.name} went away`));
      throw new VosError('peer_offline', `${p.name} is not connected any more; ask it to request pairing again`);
    }
    if (normalizeCode(code) !== pairing.code) {
      pairing.wrongCodes++;
      if (pairing.wrongCodes >= WRONG_CODES_ALLOWED) {
        link.sendControl({ t: 'pair-reject', reason: 'the code was typed wrong too often' });
        this.endPairing(p, null);
        throw new VosError('wrong_code', `the code does not match the one this machine shows for ${p.name}; the request is rejected after ${WRONG_CODES_ALLOWED} tries`);
      }
      throw new VosError('wrong_code', `the code does not match the one this machine shows for ${p.name} (${WRONG_CODES_ALLOWED - pairing.wrongCodes} tries left): check that you accept the machine you mean`);
    }
    link.sendControl({ t: 'pair-accept' });
    this.becomePaired(p, link);
    return this.info(p);
  }

  reject(ref: string): PeerInfo {
    const p = this.find(ref);
    if (!p.pairing) throw new VosError('invalid_params', `no pairing with ${p.name} is in progress`);
    p.link?.sendControl({ t: p.pairing.direction === 'incoming' ? 'pair-reject' : 'pair-cancel', reason: 'the user declined' });
    this.endPairing(p, new VosError('pair_rejected', 'cancelled on this machine'));
    return this.info(p);
  }

  unpair(ref: string): PeerInfo {
    const p = this.find(ref);
    if (!p.paired) throw new VosError('not_paired', `${p.name} is not paired with this machine`);
    p.link?.sendControl({ t: 'unpair' });
    this.forgetPairing(p, 'unpaired on this machine');
    return this.info(p);
  }

  // ---- peers

  private peer(id: string): Peer {
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
        link: null,
        dialing: false,
        warning: null,
        pairing: null,
        channels: null,
        retryTimer: null,
        retryDelay: RECONNECT_MIN_MS,
        requests: [],
        refusals: [],
        pairingOutcome: null,
      };
      this.peers.set(id, p);
    }
    return p;
  }

  /** Whether `ref` names this machine (its name, or the start of its id), not a peer. */
  isSelf(ref: string): boolean {
    if (ref === this.options.name) return ![...this.peers.values()].some((p) => p.name === ref && p.paired);
    return idStartsWith(this.options.identity.id, ref);
  }

  private find(ref: string): Peer {
    const all = [...this.peers.values()].filter((p) => this.visible(p));
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
  private visible(p: Peer): boolean {
    const recently = p.lastSeen !== null && Date.now() - p.lastSeen < FORGET_UNSEEN_MS;
    return p.paired || p.manual || p.mdnsPresent || p.link !== null || p.pairing !== null || p.warning !== null || recently;
  }

  private info(p: Peer): PeerInfo {
    const linkUp = p.link !== null && !p.link.isClosed;
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
      online: linkUp || p.mdnsPresent,
      lastSeen: linkUp ? Date.now() : p.lastSeen,
      link: linkUp ? 'up' : p.dialing ? 'connecting' : 'down',
      warning: p.warning,
      pairing: p.pairing ? { direction: p.pairing.direction, code: p.pairing.code, since: p.pairing.since } : null,
    };
  }

  private changed(p: Peer): void {
    const info = this.info(p);
    const event: PeerEvent = this.visible(p) ? { event: 'peer.changed', peer: info } : { event: 'peer.removed', id: p.id };
    for (const l of this.listeners) l(event);
  }

  private save(p: Peer): void {
    if (!p.paired && !p.manual) {
      if (this.store.get(p.id)) this.store.unpair(p.id);
      return;
    }
    this.store.update(p.id, { name: p.name, paired: p.paired, manual: p.manual, lastSeen: p.lastSeen ?? null, addresses: p.addresses });
  }

  private whyOffline(p: Peer): string {
    if (p.dialing) return 'connecting';
    if (p.addresses.length === 0) return 'no address known: it has not been seen on this network';
    return `last tried ${p.addresses[0]}`;
  }

  /** A paired machine with this name, other than `id`. */
  private pairedNamesake(name: string, id: string): Peer | undefined {
    return [...this.peers.values()].find((q) => q.paired && q.id !== id && q.name === name);
  }

  // ---- discovery

  private discovered(d: DiscoveredPeer): void {
    const p = this.peer(d.id);
    p.mdnsPresent = true;
    p.lastSeen = Date.now();
    learn(p, d);
    const namesake = this.pairedNamesake(d.name, d.id);
    if (namesake && !p.paired) {
      p.warning = `presents another certificate under the name "${d.name}" of a paired machine (${shortDeviceId(namesake.id)}): not trusted`;
      this.options.log(`refusing ${shortDeviceId(d.id)}: ${p.warning}`);
    }
    p.name = d.name;
    // Where it answers from now first (a laptop that changed networks), older addresses after.
    p.addresses = [...d.addresses, ...p.addresses.filter((a) => !d.addresses.includes(a))].slice(0, 8);
    this.changed(p);
    if (!p.paired) return;
    if (!p.link || p.link.isClosed) this.dialSoon(p, 0);
    else if (p.link.outbound && !d.addresses.includes(p.link.remoteAddress)) {
      // It answers from elsewhere now (another network): the link we have is probably dead.
      // Dial the new address; adopt() keeps whichever link is alive.
      void this.dial(p, true);
    }
  }

  private undiscovered(id: string, why: 'goodbye' | 'silent'): void {
    const p = this.peers.get(id);
    if (!p) return;
    p.mdnsPresent = false;
    p.lastSeen = Date.now();
    this.options.log(`${p.name} ${why === 'goodbye' ? 'said goodbye' : 'stopped answering'}`);
    this.changed(p);
  }

  // ---- links

  private helloInfo(): LinkHello {
    return {
      v: LINK_PROTOCOL_VERSION,
      id: this.options.identity.id,
      name: this.options.name,
      version: packageVersion(),
      os: type(),
      arch: arch(),
      kernel: release(),
      load: Math.round(loadavg()[0]! * 100) / 100,
      port: this.listenPort(),
    };
  }

  private listenPort(): number {
    const addr = this.server?.address();
    return addr && typeof addr === 'object' ? addr.port : 0;
  }

  private async acceptSocket(socket: TLSSocket): Promise<void> {
    if (this.stopped) return void socket.destroy();
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    try {
      const link = await establishLink(socket, this.helloInfo(), false);
      const p = this.peer(link.peerId);
      const remote = socket.remoteAddress;
      if (remote && link.hello.port > 0) {
        const addr = formatHostPort(remote, link.hello.port);
        if (!p.addresses.includes(addr)) p.addresses.push(addr);
      }
      this.adopt(link, p);
    } catch (err) {
      this.options.log(`incoming link from ${socket.remoteAddress ?? '?'} refused: ${(err as Error).message}`);
    }
  }

  private dialAddress(host: string, port: number): Promise<Link> {
    return new Promise<Link>((resolve, reject) => {
      const socket = tlsConnect({
        host,
        port,
        key: this.options.identity.keyPem,
        cert: this.options.identity.certPem,
        rejectUnauthorized: false, // pinned by device id below, not by a CA
        minVersion: 'TLSv1.3',
        servername: undefined,
      });
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new LinkError(`no answer within ${DIAL_TIMEOUT_MS / 1000} s`));
      }, DIAL_TIMEOUT_MS);
      socket.once('secureConnect', () => {
        establishLink(socket, this.helloInfo(), true).then(
          (link) => {
            clearTimeout(timer);
            resolve(link);
          },
          (err: unknown) => {
            clearTimeout(timer);
            reject(err as Error);
          },
        );
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new LinkError(err.message));
      });
    });
  }

  /** The link to p, dialing it if needed. */
  private async linkTo(p: Peer): Promise<Link> {
    if (p.link && !p.link.isClosed) return p.link;
    await this.dial(p);
    if (p.link && !p.link.isClosed) return p.link;
    throw new VosError('peer_offline', `cannot reach ${p.name} (${this.whyOffline(p)})`);
  }

  private dialSoon(p: Peer, delay: number): void {
    if (this.stopped || p.retryTimer) return;
    p.retryTimer = setTimeout(() => {
      p.retryTimer = null;
      void this.dial(p).then(() => {
        if (this.stopped || (p.link && !p.link.isClosed) || !(p.paired || p.manual)) return;
        p.retryDelay = Math.min(p.retryDelay * 2, RECONNECT_MAX_MS);
        this.dialSoon(p, p.retryDelay);
      });
    }, delay);
    p.retryTimer.unref();
  }

  /** Tries p's addresses in turn; `again`: even though a link exists (it may be dead). */
  private async dial(p: Peer, again = false): Promise<void> {
    if (p.dialing || this.stopped || (!again && p.link && !p.link.isClosed)) return;
    p.dialing = true;
    this.changed(p);
    try {
      for (const address of [...p.addresses]) {
        let target: { host: string; port: number };
        try {
          target = parseHostPort(address, DEFAULT_PEER_PORT);
        } catch {
          continue;
        }
        let link: Link;
        try {
          link = await this.dialAddress(target.host, target.port);
        } catch {
          continue;
        }
        if (link.peerId !== p.id) {
          // Another machine answers at this address now.
          const other = this.peer(link.peerId);
          if (p.paired && link.hello.name === p.name) {
            p.warning = `${address} answered with another certificate (${shortDeviceId(link.peerId)}) under this machine's name: refused`;
            this.options.log(`${p.name}: ${p.warning}`);
          }
          this.adopt(link, other);
          continue;
        }
        p.addresses = [address, ...p.addresses.filter((a) => a !== address)];
        this.adopt(link, p);
        return;
      }
    } finally {
      p.dialing = false;
      this.changed(p);
    }
  }

  /** Takes a fresh link for peer p: keeps one link per peer, checks trust, starts serving. */
  private adopt(link: Link, p: Peer): void {
    if (this.stopped) return link.close('the agent is stopping');
    const namesake = this.pairedNamesake(link.hello.name, link.peerId);
    if (namesake && !p.paired) {
      p.name = link.hello.name;
      p.warning = `presents another certificate under the name "${link.hello.name}" of a paired machine (${shortDeviceId(namesake.id)}): refused`;
      this.options.log(`refusing ${shortDeviceId(link.peerId)}: ${p.warning}`);
      link.start({ control: () => {}, rpc: () => {}, stream: (s) => s.destroy(), closed: () => {} });
      link.sendControl({ t: 'refused', reason: `a machine named "${link.hello.name}" is paired with this one already, with another certificate` });
      link.close('impostor');
      this.changed(p);
      return;
    }
    const current = p.link;
    if (current && !current.isClosed && current !== link) {
      // Two links. If the old one has gone quiet (the peer moved, its address is gone) the new
      // one wins. Otherwise both sides dialed at once: both agents keep the one the lower id
      // dialed, or the newer if the same side dialed both.
      const keepNew = current.seemsStale || (link.dialerId === current.dialerId ? true : link.dialerId < current.dialerId);
      if (!keepNew) {
        link.start({ control: () => {}, rpc: () => {}, stream: (s) => s.destroy(), closed: () => {} });
        link.close('a link to this peer exists already');
        return;
      }
      this.detachLink(p, current);
      current.close('replaced by a newer link');
    }
    p.link = link;
    p.name = link.hello.name;
    learn(p, link.hello);
    p.lastSeen = Date.now();
    p.retryDelay = RECONNECT_MIN_MS;
    if (p.retryTimer) {
      clearTimeout(p.retryTimer);
      p.retryTimer = null;
    }
    link.start({
      control: (m) => this.control(p, link, m),
      rpc: (m) => this.rpc(p, link, m),
      stream: (s) => {
        if (p.paired && this.options.onStream) this.options.onStream({ id: p.id, name: p.name }, s);
        else s.destroy(new Error('this agent accepts no streams from this machine'));
      },
      closed: (reason) => this.linkClosed(p, link, reason),
    });
    if (p.paired) this.startChannels(p, link);
    this.options.log(`link ${link.outbound ? 'to' : 'from'} ${p.name} (${shortDeviceId(p.id)}) at ${link.remoteAddress}${p.paired ? ', paired' : ''}`);
    if (p.paired || p.manual) this.save(p);
    this.changed(p);
  }

  private detachLink(p: Peer, link: Link): void {
    if (p.link !== link) return;
    p.link = null;
    if (p.channels) {
      p.channels.close();
      p.channels = null;
      for (const l of this.linkListeners) l(p.id, false);
    }
  }

  private linkClosed(p: Peer, link: Link, reason: string): void {
    if (p.link !== link) return;
    this.detachLink(p, link);
    p.lastSeen = Date.now();
    this.options.log(`link with ${p.name} closed: ${reason}`);
    if (p.pairing) this.endPairing(p, new VosError('peer_offline', `the link to ${p.name} closed (${reason})`));
    if (p.paired || p.manual) {
      this.save(p);
      this.dialSoon(p, p.retryDelay);
    }
    this.changed(p);
  }

  private startChannels(p: Peer, link: Link): void {
    link.trust();
    p.channels = new ChannelHost(link, this.serveChannels({ id: p.id, name: p.name }), this.options.log);
    for (const l of this.linkListeners) l(p.id, true);
  }

  // ---- messages from a peer

  private control(p: Peer, link: Link, m: Record<string, unknown>): void {
    switch (m.t) {
      case 'pair-request':
        return this.pairRequested(p, link);
      case 'pair-accept':
        if (p.pairing?.direction === 'outgoing') this.becomePaired(p, link);
        return; // an acceptance nobody asked for is ignored: only the asking side trusts one
      case 'pair-reject':
        if (p.pairing?.direction === 'outgoing') {
          const why = typeof m.reason === 'string' ? m.reason.slice(0, 200) : 'no reason given';
          this.endPairing(p, new VosError('pair_rejected', `${p.name} rejected the pairing: ${why}`));
        }
        return;
      case 'pair-cancel':
        if (p.pairing?.direction === 'incoming') this.endPairing(p, null);
        return;
      case 'refused': {
        const why = typeof m.reason === 'string' ? m.reason.slice(0, 200) : 'no reason given';
        this.options.log(`${p.name} refused: ${why}`);
        if (p.pairing?.direction === 'outgoing') this.endPairing(p, new VosError('refused', `${p.name} refused: ${why}`));
        return;
      }
      case 'unpair':
        if (p.paired) this.forgetPairing(p, `${p.name} unpaired`);
        return;
      default:
        return this.refuse(p, link, `unknown control message ${JSON.stringify(String(m.t)).slice(0, 40)}`);
    }
  }

  private pairRequested(p: Peer, link: Link): void {
    const now = Date.now();
    p.requests = p.requests.filter((t) => now - t < 60_000);
    this.pairRequestTimes = this.pairRequestTimes.filter((t) => now - t < 60_000);
    if (p.requests.length >= PAIR_REQUESTS_PER_PEER || this.pairRequestTimes.length >= PAIR_REQUESTS_TOTAL) {
      link.sendControl({ t: 'refused', reason: 'too many pairing requests: try again in a minute' });
      return this.refuse(p, link, 'pairing requests over the limit');
    }
    p.requests.push(now);
    this.pairRequestTimes.push(now);
    if (p.paired) {
      // It proved it holds the paired key (TLS): it lost its side of the pairing. Re-confirm.
      link.sendControl({ t: 'pair-accept' });
      return;
    }
    if (p.pairing?.direction === 'outgoing') {
      // Both asked at once: the side with the lower id gives way and answers the other's request.
      if (this.id < p.id) {
        this.endPairing(p, new VosError('refused', `${p.name} asked at the same time; accept its request instead`));
      } else {
        return;
      }
    }
    if (p.pairing) return; // asked already: the same code is showing
    const code = verificationCode(this.options.identity.certDer, link.peerCertDer);
    p.pairing = this.newPairing('incoming', code, p);
    this.options.log(`${p.name} (${shortDeviceId(p.id)}) asks to pair; code ${code}`);
    const info = this.info(p);
    for (const l of this.listeners) l({ event: 'pair.requested', peer: info, code });
    this.changed(p);
  }

  private rpc(p: Peer, link: Link, m: unknown): void {
    if (!p.paired || !p.channels) {
      const id = typeof m === 'object' && m !== null ? (m as { m?: { id?: unknown } }).m?.id : undefined;
      link.sendControl({ t: 'refused', reason: 'not paired: this machine accepts nothing but a pairing request', request: typeof id === 'number' ? id : null });
      return this.refuse(p, link, 'an API request before pairing');
    }
    p.channels.receive(m);
  }

  /** Counts a refused message; a peer that keeps sending them loses its link. */
  private refuse(p: Peer, link: Link, what: string): void {
    const now = Date.now();
    p.refusals = p.refusals.filter((t) => now - t < 60_000);
    p.refusals.push(now);
    this.options.log(`refused from ${p.name} (${shortDeviceId(p.id)}): ${what}`);
    if (p.refusals.length > REFUSALS_BEFORE_CLOSE) link.close('too many refused messages');
  }

  // ---- pairing state

  private newPairing(direction: 'outgoing' | 'incoming', code: string, p: Peer): Pairing {
    const timer = setTimeout(() => {
      p.link?.sendControl({ t: direction === 'incoming' ? 'pair-reject' : 'pair-cancel', reason: 'nobody answered in time' });
      this.endPairing(p, new VosError('timeout', `the pairing with ${p.name} expired after ${PAIRING_TIMEOUT_MS / 1000} s`));
    }, PAIRING_TIMEOUT_MS);
    timer.unref();
    return { direction, code, since: Date.now(), timer, wrongCodes: 0, waiters: [] };
  }

  /** Ends a pairing in progress: waiters get `error`, or nothing happened (null: quietly). */
  private endPairing(p: Peer, error: VosError | null): void {
    const pairing = p.pairing;
    if (!pairing) return;
    p.pairing = null;
    clearTimeout(pairing.timer);
    const why = error ?? new VosError('pair_rejected', 'the pairing was cancelled');
    if (pairing.direction === 'outgoing') p.pairingOutcome = { error: why, at: Date.now() };
    for (const w of pairing.waiters) w.reject(why);
    this.changed(p);
  }

  private becomePaired(p: Peer, link: Link): void {
    const pairing = p.pairing;
    p.pairing = null;
    if (pairing) clearTimeout(pairing.timer);
    p.paired = true;
    p.warning = null;
    this.store.update(p.id, { name: p.name, paired: true, pairedAt: Date.now(), manual: p.manual, addresses: p.addresses, lastSeen: Date.now() });
    this.options.log(`paired with ${p.name} (${shortDeviceId(p.id)})`);
    if (!p.channels) this.startChannels(p, link);
    const info = this.info(p);
    for (const w of pairing?.waiters ?? []) w.resolve(info);
    this.changed(p);
  }

  private forgetPairing(p: Peer, why: string): void {
    p.paired = false;
    this.store.unpair(p.id);
    if (p.channels) {
      p.channels.close();
      p.channels = null;
      for (const l of this.linkListeners) l(p.id, false);
    }
    p.link?.untrust();
    if (p.retryTimer && !p.manual) {
      clearTimeout(p.retryTimer);
      p.retryTimer = null;
    }
    this.options.log(`pairing with ${p.name} forgotten: ${why}`);
    this.changed(p);
  }
}

/** Takes what a machine says about itself (from discovery or its HELLO). */
function learn(p: Peer, about: PeerAbout): void {
  p.os = about.os;
  p.arch = about.arch;
  p.kernel = about.kernel;
  p.version = about.version;
  p.load = about.load;
}

/** Whether `ref` (4 characters or more) starts a device id, in hex or in its short form. */
function idStartsWith(id: string, ref: string): boolean {
  const key = ref.toLowerCase().replace(/-/g, '');
  return key.length >= 4 && (id.startsWith(key) || shortDeviceId(id).replace(/-/g, '').toLowerCase().startsWith(key));
}
