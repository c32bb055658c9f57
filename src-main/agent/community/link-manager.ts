/**
 * The links to other machines: at most one TLS link per peer (link.ts), whether this agent
 * dialed it or accepted it. Listens for links, dials a peer's addresses in turn, and dials a
 * paired (or hand-added) peer again whenever its link is down, with a growing pause
 * (RECONNECT_MAX_MS at most), so a network blip heals by itself.
 *
 * Every fresh link, dialed or accepted, goes through `adopt`: a machine that takes the name of
 * a paired one with another certificate is refused there (the registry's impostor check), and
 * of two links to one peer both sides keep the same one. Once the peer is paired the link
 * carries API channels (channels.ts); before that a peer can only ask to pair, and a peer that
 * keeps sending anything else loses its link. CONTROL messages (pairing) go to `events.control`,
 * but `about`: what a paired machine says about itself beyond its HELLO (kernel, load), sent
 * when the link starts carrying API channels, and taken only from a paired peer.
 *
 * Accepted connections that have not said who they are (TLS handshake or HELLO under way) are
 * limited per source and in all, and closed if they take too long (unidentified.ts).
 */
import { arch, loadavg, release, type } from 'node:os';
import type { Socket } from 'node:net';
import { createServer, connect as tlsConnect, type Server, type TLSSocket } from 'node:tls';
import { VosError } from '../../api/errors.js';
import { shortDeviceId } from '../../base/device-id.js';
import { packageVersion } from '../../base/package-paths.js';
import { cleanPeerText } from '../../base/peer-text.js';
import { DEFAULT_PEER_PORT, formatHostPort, parseHostPort } from './addresses.js';
import { ChannelHost, type ChannelServer } from './channels.js';
import type { Identity } from './identity.js';
import { Link, LinkError, LINK_PROTOCOL_VERSION, establishLink, type LinkHandlers, type LinkHello } from './link.js';
import type { IncomingStream, OutgoingStream } from './link-streams.js';
import { RECONNECT_MAX_MS } from './link-timing.js';
import type { Peer, PeerRegistry } from './peer-registry.js';
import { UnidentifiedConnections, sourceOf } from './unidentified.js';

export { DEFAULT_PEER_PORT };
const DIAL_TIMEOUT_MS = 5_000;
const RECONNECT_MIN_MS = 500;
/** Accepted connections not yet identified (TLS or HELLO under way), from one source and in all. */
const UNIDENTIFIED_PER_SOURCE = 8;
const UNIDENTIFIED_TOTAL = 64;
/** An accepted connection has this long for TLS and HELLO (each has its own 5 s timeout too). */
const IDENTIFY_WITHIN_MS = 10_000;
/**
 * Incoming links of unpaired (and not hand-added) machines from one source. In all, strangers'
 * links are bounded by MAX_STRANGER_LINKS, the oldest idle one closing for a new one: refusing
 * new ones instead would let a flood from a few addresses keep every honest stranger (one that
 * comes to pair) out for as long as it holds its links.
 */
const UNPAIRED_LINKS_PER_SOURCE = 8;
/** Refused frames from an unpaired peer per minute before its link is closed. */
const REFUSALS_BEFORE_CLOSE = 30;
/** Links kept up to strangers (unpaired, not added, not discovered) not pairing; beyond, the oldest closes. */
export const MAX_STRANGER_LINKS = 64;

/** Serves the API to a paired peer's channels (the agent's dispatcher, with a peer's rights). */
export interface ChannelServerFactory {
  (peer: { id: string; name: string }): ChannelServer;
}

export interface LinkManagerOptions {
  identity: Identity;
  name: string;
  log: (message: string) => void;
  serveChannels: ChannelServerFactory;
  /** A CONTROL message (pairing) from peer p on its link. */
  control: (p: Peer, link: Link, message: Record<string, unknown>) => void;
  /** Peer p's link closed (it is detached already). */
  closed: (p: Peer, reason: string) => void;
  /** Whether a pairing with peer `id` is in progress (its link to a stranger is kept then). */
  pairingBusy: (id: string) => boolean;
  /** A paired peer opened a byte stream (a migration's image); absent: streams are refused. */
  onStream?: (peer: { id: string; name: string }, stream: IncomingStream) => void;
}

/** What the links keep per peer. */
interface Slot {
  link: Link | null;
  dialing: boolean;
  channels: ChannelHost | null;
  retryTimer: NodeJS.Timeout | null;
  retryDelay: number;
  /** Refused messages in the last minute (timestamps). */
  refusals: number[];
}

/** Handlers for a link that is dropped at once: it delivers nothing. */
const DROPPED: LinkHandlers = { control: () => {}, rpc: () => {}, stream: (s) => s.destroy(), closed: () => {} };

/** The TLS options of both ends of a link: TLS 1.3, both sides show their certificate. */
function tlsOptions(identity: Identity): { key: string; cert: string; rejectUnauthorized: false; minVersion: 'TLSv1.3' } {
  return {
    key: identity.keyPem,
    cert: identity.certPem,
    // Self-signed certificates: the device id (the certificate's hash) is checked in
    // establishLink and against the paired peers, not by a CA.
    rejectUnauthorized: false,
    minVersion: 'TLSv1.3',
  };
}

export class LinkManager {
  private readonly slots = new Map<string, Slot>();
  private readonly linkListeners = new Set<(peerId: string, up: boolean) => void>();
  private readonly sockets = new Set<TLSSocket>();
  private readonly unidentified: UnidentifiedConnections;
  private server: Server | null = null;
  private listenAddress: string | null = null;
  private stopped = false;

  constructor(
    private readonly options: LinkManagerOptions,
    private readonly registry: PeerRegistry,
  ) {
    this.unidentified = new UnidentifiedConnections(
      { perSource: UNIDENTIFIED_PER_SOURCE, total: UNIDENTIFIED_TOTAL, withinMs: IDENTIFY_WITHIN_MS },
      options.log,
    );
  }

  /** host:port this agent listens on for links; null: it does not. */
  get listening(): string | null {
    return this.listenAddress;
  }

  /** The port this agent listens on for links (0: none). */
  get port(): number {
    const addr = this.server?.address();
    return addr && typeof addr === 'object' ? addr.port : 0;
  }

  async listen(at: { host: string; port: number }): Promise<void> {
    const server = createServer({ ...tlsOptions(this.options.identity), requestCert: true, handshakeTimeout: DIAL_TIMEOUT_MS }, (socket) => void this.acceptSocket(socket));
    // Counted from the TCP connection on (tls.Server's own listener has wrapped it already).
    server.on('connection', (raw: Socket) => void this.unidentified.admit(raw));
    server.on('tlsClientError', (_err, socket) => {
      // A failed or timed-out handshake (scanner, wrong protocol): Node leaves the socket open.
      socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(at.port, at.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.options.log(`peer listener: ${err.message}`));
    this.server = server;
    const addr = server.address();
    if (addr && typeof addr === 'object') this.listenAddress = formatHostPort(addr.address, addr.port);
  }

  /** No more dialing or adopting links: the agent is stopping. */
  halt(): void {
    this.stopped = true;
  }

  /** Closes every link and the listener (after `halt`). */
  async close(): Promise<void> {
    this.halt();
    for (const s of this.slots.values()) {
      if (s.retryTimer) clearTimeout(s.retryTimer);
      s.link?.close('the agent is stopping');
    }
    for (const s of this.sockets) s.destroy();
    this.unidentified.closeAll();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** Called when a paired peer's API channels become usable (up) or stop being so. */
  onPeerLink(listener: (peerId: string, up: boolean) => void): () => void {
    this.linkListeners.add(listener);
    return () => this.linkListeners.delete(listener);
  }

  /** What this agent says about itself first on every link (and, but the port, in mDNS). */
  hello(): LinkHello {
    return {
      v: LINK_PROTOCOL_VERSION,
      id: this.options.identity.id,
      name: this.options.name,
      version: packageVersion(),
      os: type(),
      arch: arch(),
      port: this.port,
    };
  }

  /** What this agent tells a paired machine beyond its HELLO. */
  private about(): Record<string, unknown> {
    return { t: 'about', kernel: release(), load: Math.round(loadavg()[0]! * 100) / 100 };
  }

  /** Peer `id`'s link as clients see it. */
  state(id: string): 'up' | 'connecting' | 'down' {
    const s = this.slots.get(id);
    if (s?.link && !s.link.isClosed) return 'up';
    return s?.dialing ? 'connecting' : 'down';
  }

  /** Peer `id`'s link if it is up. */
  current(id: string): Link | null {
    const link = this.slots.get(id)?.link;
    return link && !link.isClosed ? link : null;
  }

  /** The channel host of a paired peer whose link is up. */
  channelsFor(peerId: string): ChannelHost {
    const p = this.registry.get(peerId);
    if (!p || !p.paired) throw new VosError('not_paired', `${p?.name ?? peerId.slice(0, 12)} is not paired with this machine`);
    const s = this.slot(p.id);
    if (!s.channels || !s.link || s.link.isClosed) {
      throw new VosError('peer_offline', `${p.name} is not connected right now (${this.registry.whyOffline(p)})`);
    }
    return s.channels;
  }

  /** A byte stream to a paired, connected peer (flow-controlled; see link-streams.ts). */
  openStream(peerId: string, meta: unknown): OutgoingStream {
    this.channelsFor(peerId); // paired and connected, or a clear error
    return this.slot(peerId).link!.openStream(meta);
  }

  /** Paired peers whose link is up. */
  connectedPeers(): Array<{ id: string; name: string }> {
    return this.registry
      .all()
      .filter((p) => p.paired && this.slots.get(p.id)?.channels)
      .map((p) => ({ id: p.id, name: p.name }));
  }

  /** `vos peer add HOST:PORT`: dials the address, remembers it for the peer that answers. */
  async addByHand(address: string): Promise<Peer> {
    const target = parseHostPort(address, DEFAULT_PEER_PORT);
    const text = formatHostPort(target.host, target.port);
    let link: Link;
    try {
      link = await this.dialAddress(target.host, target.port);
    } catch (err) {
      throw VosError.wrap('unreachable', `cannot link to ${text}: ${(err as Error).message}`, err);
    }
    const p = this.registry.peer(link.peerId);
    p.manual = true;
    p.addresses = [text, ...p.addresses.filter((a) => a !== text)];
    this.adopt(link, p);
    this.registry.save(p);
    return p;
  }

  /** The link to p, dialing it if needed. */
  async linkTo(p: Peer): Promise<Link> {
    const up = this.current(p.id);
    if (up) return up;
    await this.dial(p);
    const dialed = this.current(p.id);
    if (dialed) return dialed;
    throw new VosError('peer_offline', `cannot reach ${p.name} (${this.registry.whyOffline(p)})`);
  }

  /** Dials p after `delay` ms unless a dial is due already; again, more slowly, while it fails. */
  dialSoon(p: Peer, delay: number): void {
    const s = this.slot(p.id);
    if (this.stopped || s.retryTimer) return;
    s.retryTimer = setTimeout(() => {
      s.retryTimer = null;
      void this.dial(p).then(() => {
        if (this.stopped || this.current(p.id) || !(p.paired || p.manual)) return;
        s.retryDelay = Math.min(s.retryDelay * 2, RECONNECT_MAX_MS);
        this.dialSoon(p, s.retryDelay);
      });
    }, delay);
    s.retryTimer.unref();
  }

  /** mDNS says where paired peer p answers now: link it if it is not, or again if it moved. */
  discoveredAt(p: Peer, addresses: string[]): void {
    const link = this.current(p.id);
    if (!link) this.dialSoon(p, 0);
    else if (link.outbound && !addresses.includes(link.remoteAddress)) {
      // It answers from elsewhere now (another network): the link we have is probably dead.
      // Dial the new address; adopt() keeps whichever link is alive.
      void this.dial(p, true);
    }
  }

  /** p is paired now: its link carries API channels. */
  trust(p: Peer): void {
    const s = this.slot(p.id);
    if (!s.channels && s.link) this.startChannels(p, s, s.link);
  }

  /** p is no longer paired: its channels end, its link is back to asking only. */
  untrust(p: Peer): void {
    const s = this.slot(p.id);
    this.closeChannels(p, s);
    s.link?.untrust();
    if (s.retryTimer && !p.manual) {
      clearTimeout(s.retryTimer);
      s.retryTimer = null;
    }
  }

  /** `vos peer forget`: p is dialed no more, and its link (if any) closes. */
  forget(p: Peer): void {
    const s = this.slots.get(p.id);
    if (!s) return;
    if (s.retryTimer) clearTimeout(s.retryTimer);
    s.retryTimer = null;
    this.slots.delete(p.id);
    s.link?.close('forgotten by the other machine');
  }

  /** Counts a refused message; a peer that keeps sending them loses its link. */
  refuse(p: Peer, link: Link, what: string): void {
    const s = this.slot(p.id);
    const now = Date.now();
    s.refusals = s.refusals.filter((t) => now - t < 60_000);
    s.refusals.push(now);
    this.options.log(`refused from ${p.name} (${shortDeviceId(p.id)}): ${cleanPeerText(what, 200)}`);
    if (s.refusals.length > REFUSALS_BEFORE_CLOSE) link.close('too many refused messages');
  }

  private slot(id: string): Slot {
    let s = this.slots.get(id);
    if (!s) {
      s = { link: null, dialing: false, channels: null, retryTimer: null, retryDelay: RECONNECT_MIN_MS, refusals: [] };
      this.slots.set(id, s);
    }
    return s;
  }

  private async acceptSocket(socket: TLSSocket): Promise<void> {
    if (this.stopped) return void socket.destroy();
    this.track(socket);
    const from = socket.remoteAddress ?? '?'; // gone once the socket is destroyed
    try {
      const link = await establishLink(socket, this.hello(), false);
      this.unidentified.identified(socket);
      const known = this.registry.get(link.peerId);
      const tooMany = known?.paired || known?.manual ? null : this.tooManyUnpaired(link);
      if (tooMany) {
        link.start(DROPPED);
        link.sendControl({ t: 'refused', reason: tooMany });
        link.close(tooMany);
        this.options.log(`incoming link from ${from} refused: ${tooMany}`);
        return;
      }
      const p = this.registry.peer(link.peerId);
      const remote = socket.remoteAddress;
      if (remote && link.hello.port > 0) {
        const addr = formatHostPort(remote, link.hello.port);
        if (!p.addresses.includes(addr)) p.addresses.push(addr);
      }
      this.adopt(link, p);
    } catch (err) {
      this.options.log(`incoming link from ${from} refused: ${(err as Error).message}`);
    }
  }

  /**
   * Why a new incoming link of an unpaired machine is one too many, or null. Each costs what a
   * connection costs and anyone can make new identities, so such links are limited per source
   * like the unidentified connections (in all: limitStrangerLinks); paired and hand-added
   * machines are not.
   */
  private tooManyUnpaired(link: Link): string | null {
    const source = sourceOf(link.remoteHost);
    let fromThere = 0;
    for (const [id, s] of this.slots) {
      const p = this.registry.get(id);
      if (id === link.peerId || !s.link || s.link.isClosed || s.link.outbound || p?.paired || p?.manual) continue;
      if (sourceOf(s.link.remoteHost) === source) fromThere++;
    }
    return fromThere >= UNPAIRED_LINKS_PER_SOURCE ? `too many unpaired machines link from ${source}` : null;
  }

  private dialAddress(host: string, port: number): Promise<Link> {
    return new Promise<Link>((resolve, reject) => {
      const socket = tlsConnect({ ...tlsOptions(this.options.identity), host, port, servername: undefined });
      this.track(socket);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new LinkError(`no answer within ${DIAL_TIMEOUT_MS / 1000} s`));
      }, DIAL_TIMEOUT_MS);
      socket.once('secureConnect', () => {
        establishLink(socket, this.hello(), true).then(
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

  /** Sockets are kept until they close, so that stopping destroys the half-open ones too. */
  private track(socket: TLSSocket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  /** Tries p's addresses in turn; `again`: even though a link exists (it may be dead). */
  private async dial(p: Peer, again = false): Promise<void> {
    const s = this.slot(p.id);
    if (s.dialing || this.stopped || (!again && this.current(p.id))) return;
    s.dialing = true;
    this.registry.changed(p);
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
          // Another machine answers at this address now; under p's name, it is an impostor (the
          // registry's check in adopt refuses it), and p learns what happened to its address.
          if (p.paired && link.hello.name === p.name) {
            p.warning = `${address} answered with another certificate (${shortDeviceId(link.peerId)}) under this machine's name: refused`;
            this.options.log(`${p.name}: ${p.warning}`);
          }
          this.adopt(link, this.registry.peer(link.peerId));
          continue;
        }
        p.addresses = [address, ...p.addresses.filter((a) => a !== address)];
        this.adopt(link, p);
        return;
      }
    } finally {
      s.dialing = false;
      this.registry.changed(p);
    }
  }

  /** Takes a fresh link for peer p: keeps one link per peer, checks trust, starts serving. */
  private adopt(link: Link, p: Peer): void {
    if (this.stopped) return link.close('the agent is stopping');
    if (this.registry.flagImpostor(p, link.hello.name, 'refused')) {
      link.start(DROPPED);
      link.sendControl({ t: 'refused', reason: `a machine named "${link.hello.name}" is paired with this one already, with another certificate` });
      link.close('impostor');
      this.registry.changed(p);
      return;
    }
    const s = this.slot(p.id);
    const current = s.link;
    if (current && !current.isClosed && current !== link) {
      // Two links. If the old one has gone quiet (the peer moved, its address is gone) the new
      // one wins. Otherwise both sides dialed at once: both agents keep the one the lower id
      // dialed, or the newer if the same side dialed both.
      const keepNew = current.seemsStale || (link.dialerId === current.dialerId ? true : link.dialerId < current.dialerId);
      if (!keepNew) {
        link.start(DROPPED);
        link.close('a link to this peer exists already');
        return;
      }
      this.detach(p, s, current);
      current.close('replaced by a newer link');
    }
    s.link = link;
    this.registry.linked(p, link.hello);
    s.retryDelay = RECONNECT_MIN_MS;
    if (s.retryTimer) {
      clearTimeout(s.retryTimer);
      s.retryTimer = null;
    }
    link.start({
      control: (m) => (m.t === 'about' ? this.learnAbout(p, m) : this.options.control(p, link, m)),
      rpc: (m) => this.rpc(p, s, link, m),
      stream: (stream) => {
        if (p.paired && this.options.onStream) this.options.onStream({ id: p.id, name: p.name }, stream);
        else stream.destroy(new VosError('refused', 'this agent accepts no streams from this machine'));
      },
      closed: (reason) => this.linkClosed(p, s, link, reason),
    });
    if (p.paired) this.startChannels(p, s, link);
    else this.limitStrangerLinks();
    this.options.log(`link ${link.outbound ? 'to' : 'from'} ${p.name} (${shortDeviceId(p.id)}) at ${link.remoteAddress}${p.paired ? ', paired' : ''}`);
    if (p.paired || p.manual) this.registry.save(p);
    this.registry.changed(p);
  }

  private detach(p: Peer, s: Slot, link: Link): void {
    if (s.link !== link) return;
    s.link = null;
    this.closeChannels(p, s);
  }

  private linkClosed(p: Peer, s: Slot, link: Link, reason: string): void {
    if (s.link !== link) return;
    this.detach(p, s, link);
    p.lastSeen = Date.now();
    this.options.log(`link with ${p.name} closed: ${reason}`);
    this.options.closed(p, reason);
    if (p.paired || p.manual) {
      this.registry.save(p);
      this.dialSoon(p, s.retryDelay);
    }
    this.registry.changed(p);
    this.forgetStranger(p, s);
  }

  /** A stranger whose link closed is forgotten, its slot with it (fresh identities leave nothing). */
  private forgetStranger(p: Peer, s: Slot): void {
    if (s.retryTimer || s.dialing || !this.registry.forgetStranger(p)) return;
    this.slots.delete(p.id);
  }

  /** Keeps at most MAX_STRANGER_LINKS links to strangers that are not pairing: the oldest close. */
  private limitStrangerLinks(): void {
    const idle = [...this.slots.entries()]
      .map(([id, s]) => ({ p: this.registry.get(id), link: s.link }))
      .filter((x): x is { p: Peer; link: Link } => !!x.p && !!x.link && !x.link.isClosed && this.registry.isStranger(x.p) && !this.options.pairingBusy(x.p.id))
      .sort((x, y) => x.link.openedAt - y.link.openedAt);
    for (const x of idle.slice(0, Math.max(0, idle.length - MAX_STRANGER_LINKS))) x.link.close('too many links from unpaired machines');
  }

  /** A paired peer's `about`; from anyone else it is ignored (it has no business sending one). */
  private learnAbout(p: Peer, m: Record<string, unknown>): void {
    if (!p.paired) return;
    const load = typeof m.load === 'number' && Number.isFinite(m.load) ? m.load : null;
    this.registry.learnAbout(p, { kernel: cleanPeerText(m.kernel), load });
    this.registry.changed(p);
  }

  private startChannels(p: Peer, s: Slot, link: Link): void {
    link.trust();
    link.sendControl(this.about());
    s.channels = new ChannelHost(link, this.options.serveChannels({ id: p.id, name: p.name }), this.options.log);
    for (const l of this.linkListeners) l(p.id, true);
  }

  /** The one teardown of a peer's channels (its link went, or it is no longer paired). */
  private closeChannels(p: Peer, s: Slot): void {
    if (!s.channels) return;
    s.channels.close();
    s.channels = null;
    for (const l of this.linkListeners) l(p.id, false);
  }

  private rpc(p: Peer, s: Slot, link: Link, m: unknown): void {
    if (!p.paired || !s.channels) {
      const id = typeof m === 'object' && m !== null ? (m as { m?: { id?: unknown } }).m?.id : undefined;
      link.sendControl({ t: 'refused', reason: 'not paired: this machine accepts nothing but a pairing request', request: typeof id === 'number' ? id : null });
      return this.refuse(p, link, 'an API request before pairing');
    }
    s.channels.receive(m);
  }
}
