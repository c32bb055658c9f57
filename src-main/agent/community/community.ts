/**
 * The machine community from this agent's side, composed of its parts:
 *
 * - the peer registry (peer-registry.ts): who the other machines are (found by mDNS, added by
 *   hand, remembered from earlier in peer-store.ts), keyed by device id, never by address or
 *   name, and the impostor check (a machine showing another certificate under the name of a
 *   paired one is refused and reported, never trusted in its place);
 * - the links (link-manager.ts): one TLS link per peer, dialed or accepted, dialed again while down;
 *   once paired, the link carries API channels (channels.ts) with the rights PEER_METHODS
 *   gives the peer;
 * - pairing (pairing.ts): request, the commit-then-reveal six-digit code, accept or reject, rate limits;
 * - mDNS discovery (discovery.ts).
 *
 * This class is the surface the rest of the agent uses; it holds no state of its own.
 */
import { VosError } from '../../api/errors.js';
import type { PeerInfo } from '../../api/protocol.js';
import type { ChannelHost } from './channels.js';
import { Discovery } from './discovery.js';
import type { Identity } from './identity.js';
import type { IncomingStream, OutgoingStream } from './link-streams.js';
import { LinkManager, type ChannelServerFactory } from './link-manager.js';
import { Pairings } from './pairing.js';
import { PeerRegistry, type PeerEvent } from './peer-registry.js';
import { PeerStore } from './peer-store.js';

export { DEFAULT_PEER_PORT, type ChannelServerFactory } from './link-manager.js';
export type { PeerEvent } from './peer-registry.js';

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

export class Community {
  private readonly registry: PeerRegistry;
  private readonly links: LinkManager;
  private readonly pairings: Pairings;
  private discovery: Discovery | null = null;

  constructor(
    private readonly options: CommunityOptions,
    serveChannels: ChannelServerFactory,
  ) {
    const { identity, name, log } = options;
    // The registry asks the links and the pairings about a peer; both are made right below.
    this.registry = new PeerRegistry({ id: identity.id, name }, new PeerStore(options.home, log), {
      link: (id) => this.links.state(id),
      pairing: (id) => this.pairings.state(id),
    }, log);
    this.links = new LinkManager(
      {
        identity,
        name,
        log,
        serveChannels,
        control: (p, link, m) => {
          if (p.paired) this.refusedByPeer(p.id, m);
          this.pairings.control(p, link, m);
        },
        closed: (p, reason) => this.pairings.linkClosed(p, reason),
        pairingBusy: (id) => this.pairings.busy(id),
        onStream: options.onStream,
      },
      this.registry,
    );
    this.pairings = new Pairings({ self: { id: identity.id, name }, log }, this.registry, this.links);
  }

  /**
   * A peer paired here that refuses this machine's API requests as "not paired" was unpaired on
   * its side only: the conversations with it end with `not_paired` at once instead of waiting.
   */
  private refusedByPeer(peerId: string, m: Record<string, unknown>): void {
    if (m.t !== 'refused' || typeof m.reason !== 'string' || !m.reason.startsWith('not paired')) return;
    let channels: ChannelHost;
    try {
      channels = this.links.channelsFor(peerId);
    } catch {
      return; // no conversations with it
    }
    channels.peerRefused();
  }

  get id(): string {
    return this.options.identity.id;
  }

  get listening(): string | null {
    return this.links.listening;
  }

  get mdnsEnabled(): boolean {
    return this.discovery !== null;
  }

  async start(): Promise<void> {
    if (this.options.listen) await this.links.listen(this.options.listen);
    if (this.options.mdns && this.links.port > 0) {
      this.discovery = new Discovery(
        { ...this.links.hello(), shortId: this.options.identity.shortId },
        this.links.port,
        {
          found: (d) => {
            const p = this.registry.discovered(d);
            if (p.paired) this.links.discoveredAt(p, d.addresses);
          },
          lost: (id, why) => this.registry.undiscovered(id, why),
        },
        this.options.log,
      );
      this.discovery.start();
    }
    for (const p of this.registry.all()) if (p.paired || p.manual) this.links.dialSoon(p, 0);
  }

  async stop(): Promise<void> {
    this.links.halt();
    await this.discovery?.stop();
    this.pairings.stop();
    await this.links.close();
  }

  onEvent(listener: (e: PeerEvent) => void): () => void {
    return this.registry.onEvent(listener);
  }

  /** Called when a paired peer's API channels become usable (up) or stop being so. */
  onPeerLink(listener: (peerId: string, up: boolean) => void): () => void {
    return this.links.onPeerLink(listener);
  }

  list(): PeerInfo[] {
    return this.registry.list();
  }

  /** A peer by id prefix (hex or short form) or exact name. */
  resolve(ref: string): PeerInfo {
    return this.registry.info(this.registry.find(ref));
  }

  /** Whether `ref` names this machine (its name, or the start of its id), not a peer. */
  isSelf(ref: string): boolean {
    return this.registry.isSelf(ref);
  }

  /** The channel host of a paired peer whose link is up. */
  channelsFor(peerId: string): ChannelHost {
    return this.links.channelsFor(peerId);
  }

  /** A byte stream to a paired, connected peer (flow-controlled; see link-streams.ts). */
  openStream(peerId: string, meta: unknown): OutgoingStream {
    return this.links.openStream(peerId, meta);
  }

  /** Paired peers whose link is up. */
  connectedPeers(): Array<{ id: string; name: string }> {
    return this.links.connectedPeers();
  }

  /** `vos peer add HOST:PORT`: dials the address, remembers it for this peer. */
  async add(address: string): Promise<PeerInfo> {
    return this.registry.info(await this.links.addByHand(address));
  }

  requestPairing(ref: string): Promise<{ peer: PeerInfo; code: string }> {
    return this.pairings.request(ref);
  }

  confirmPairing(ref: string, code: string): PeerInfo {
    return this.pairings.confirm(ref, code);
  }

  waitPairing(ref: string, timeoutMs: number): Promise<PeerInfo> {
    return this.pairings.wait(ref, timeoutMs);
  }

  pending(): PeerInfo[] {
    return this.pairings.pending();
  }

  accept(ref: string, code: string): PeerInfo {
    return this.pairings.accept(ref, code);
  }

  reject(ref: string): PeerInfo {
    return this.pairings.reject(ref);
  }

  unpair(ref: string): PeerInfo {
    return this.pairings.unpair(ref);
  }

  /**
   * `vos peer forget`: a machine that is not paired leaves the list, its remembered addresses
   * with it, and is not dialed any more (its link closes). Listed again if it is seen again (on
   * the network, or it links here). A paired one must be unpaired first.
   */
  forget(ref: string): void {
    const p = this.registry.find(ref);
    if (p.paired) throw new VosError('invalid_params', `${p.name} is paired with this machine: unpair it first (vos unpair ${p.name})`);
    if (this.registry.info(p).pairing) throw new VosError('invalid_params', `a pairing with ${p.name} is in progress: reject or cancel it first`);
    this.links.forget(p);
    this.registry.forget(p);
    this.options.log(`forgot ${p.name} (${p.id.slice(0, 12)})`);
  }
}
