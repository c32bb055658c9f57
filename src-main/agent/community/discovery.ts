/**
 * Finding the other vOS agents on the LAN with mDNS/DNS-SD (bonjour-service): this agent
 * publishes `_vos._tcp` with its id, name, version, OS and architecture in TXT (what its HELLO
 * says to any machine: the TXT record is public on the LAN; kernel and load go to paired machines
 * only), and browses for the others. mDNS alone does not notice a machine that died without saying
 * goodbye (its records live for hours), so the browser asks again every few seconds and a peer
 * that has not answered for EXPIRE_MS is reported lost.
 *
 * Discovery only says where a machine claims to be; nothing it says is trusted. The link's TLS
 * handshake proves the id. Its text is cleaned on arrival (base/peer-text.ts).
 */
import { Bonjour, type Browser, type Service } from 'bonjour-service';
import { isDeviceId } from '../../base/device-id.js';
import { cleanPeerText, PEER_FIELD_MAX, PEER_NAME_MAX } from '../../base/peer-text.js';
import type { LinkHello } from './link.js';

export const SERVICE_TYPE = 'vos';
/** Ask who is there this often; a peer that misses three answers in a row is lost (< 15 s). */
const QUERY_EVERY_MS = 3_000;
const EXPIRE_MS = 10_000;
const CHECK_EVERY_MS = 1_000;

/** What this agent says about itself: what it says in a link's HELLO, and its short id. */
export type AdvertisedInfo = Omit<LinkHello, 'v' | 'port'> & { shortId: string };

export interface DiscoveredPeer extends Omit<AdvertisedInfo, 'shortId'> {
  /** host:port, the address the answer came from first. */
  addresses: string[];
}

export interface DiscoveryEvents {
  found(peer: DiscoveredPeer): void;
  lost(id: string, why: 'goodbye' | 'silent'): void;
}

/** The raw multicast-dns packet, as far as we read it. */
interface MdnsPacket {
  answers?: Array<{ name?: string; type?: string; ttl?: number; data?: unknown }>;
  additionals?: Array<{ name?: string; type?: string; ttl?: number; data?: unknown }>;
}

interface Tracked {
  fqdn: string;
  peer: DiscoveredPeer;
  lastSeen: number;
  present: boolean;
}

export class Discovery {
  private bonjour: Bonjour | null = null;
  private browser: Browser | null = null;
  private service: Service | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly byFqdn = new Map<string, Tracked>();
  private readonly onResponse = (packet: MdnsPacket, rinfo?: { address?: string }): void => this.sawPacket(packet, rinfo?.address);

  constructor(
    private readonly self: AdvertisedInfo,
    private readonly port: number,
    private readonly events: DiscoveryEvents,
    private readonly log: (message: string) => void,
  ) {}

  start(): void {
    if (this.bonjour) return;
    // Errors of the mDNS socket (e.g. no multicast on this network) are logged, never thrown:
    // discovery is a convenience, manual addition always works.
    const bonjour = new Bonjour({}, (err: Error) => this.log(`mDNS: ${err.message}`));
    this.bonjour = bonjour;
    const compact = this.self.shortId.replace(/-/g, '').toLowerCase();
    this.service = bonjour.publish({
      name: `vos-${compact}`,
      type: SERVICE_TYPE,
      port: this.port,
      host: `vos-${compact}.local`,
      txt: {
        id: this.self.id,
        name: this.self.name,
        version: this.self.version,
        os: this.self.os,
        arch: this.self.arch,
      },
      disableIPv6: true,
    });
    this.service.on('error', (err: Error) => this.log(`mDNS publish: ${err.message}`));
    this.browser = bonjour.find({ type: SERVICE_TYPE });
    this.browser.on('up', (s) => this.saw(s));
    this.browser.on('srv-update', (s) => this.saw(s));
    this.browser.on('txt-update', (s) => this.saw(s));
    this.browser.on('down', (s) => this.goodbye(s));
    const mdns = this.mdns();
    mdns?.on('response', this.onResponse);
    // multicast-dns reports a socket it cannot bind as 'error' (which would otherwise end the
    // process) and failed sends (no multicast route) as 'warning'.
    mdns?.on('error', (err: Error) => this.log(`mDNS socket: ${err.message}`));
    mdns?.on('warning', (err: Error) => this.warnOnce(err));
    this.timer = setInterval(() => this.tick(), CHECK_EVERY_MS);
    this.timer.unref();
  }

  /** Says goodbye (the peers drop us at once) and closes the mDNS socket. */
  async stop(): Promise<void> {
    const bonjour = this.bonjour;
    if (!bonjour) return;
    this.bonjour = null;
    if (this.timer) clearInterval(this.timer);
    this.mdns(bonjour)?.removeListener('response', this.onResponse);
    this.browser?.stop();
    await new Promise<void>((resolve) => {
      const done = setTimeout(resolve, 1000);
      bonjour.unpublishAll(() => {
        clearTimeout(done);
        resolve();
      });
    });
    await new Promise<void>((resolve) => bonjour.destroy(() => resolve()));
  }

  private warned = new Set<string>();

  /** A network without multicast warns on every send: say it once per kind of failure. */
  private warnOnce(err: Error & { code?: string }): void {
    const key = err.code ?? err.message;
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log(`mDNS: ${err.message} (discovery may not work on this network; vos peer add HOST:PORT does)`);
  }

  /** The peers answering now. */
  current(): DiscoveredPeer[] {
    return [...this.byFqdn.values()].filter((t) => t.present).map((t) => t.peer);
  }

  private mdns(bonjour: Bonjour | null = this.bonjour): { on: Function; removeListener: Function } | null {
    // bonjour-service keeps its multicast-dns socket in a field its types call private; we only
    // listen to its responses to know who is still answering.
    const server = (bonjour as unknown as { server?: { mdns?: { on: Function; removeListener: Function } } } | null)?.server;
    return server?.mdns ?? null;
  }

  private saw(service: Service): void {
    const peer = toPeer(service);
    if (!peer || peer.id === this.self.id) return;
    const tracked = this.byFqdn.get(service.fqdn);
    const wasPresent = tracked?.present ?? false;
    this.byFqdn.set(service.fqdn, { fqdn: service.fqdn, peer, lastSeen: Date.now(), present: true });
    if (!wasPresent || JSON.stringify(tracked?.peer) !== JSON.stringify(peer)) this.events.found(peer);
  }

  private goodbye(service: Service): void {
    const tracked = this.byFqdn.get(service.fqdn);
    if (!tracked) return;
    this.byFqdn.delete(service.fqdn);
    if (tracked.present) this.events.lost(tracked.peer.id, 'goodbye');
  }

  /**
   * Any answer naming a service we know shows that its agent is alive, and where it is now: a
   * machine that moved to another network answers from its new address.
   */
  private sawPacket(packet: MdnsPacket, from: string | undefined): void {
    const now = Date.now();
    const moved = new Set<Tracked>();
    for (const rr of [...(packet.answers ?? []), ...(packet.additionals ?? [])]) {
      if ((rr.ttl ?? 0) === 0) continue;
      const name = rr.type === 'PTR' && typeof rr.data === 'string' ? rr.data : rr.name;
      if (!name) continue;
      const tracked = this.byFqdn.get(name.toLowerCase()) ?? this.byFqdn.get(name);
      if (!tracked) continue;
      tracked.lastSeen = now;
      if (from && !tracked.peer.addresses.some((a) => a.startsWith(`${from}:`))) moved.add(tracked);
      if (!tracked.present) {
        tracked.present = true;
        if (!moved.has(tracked)) this.events.found(tracked.peer);
      }
    }
    for (const t of moved) {
      const port = t.peer.addresses[0]?.slice(t.peer.addresses[0].lastIndexOf(':') + 1);
      if (!port) continue;
      t.peer = { ...t.peer, addresses: [`${from}:${port}`, ...t.peer.addresses] };
      this.events.found(t.peer);
    }
  }

  private lastQuery = 0;

  private tick(): void {
    const now = Date.now();
    if (now - this.lastQuery >= QUERY_EVERY_MS) {
      this.lastQuery = now;
      this.browser?.update();
    }
    for (const t of this.byFqdn.values()) {
      if (t.present && now - t.lastSeen > EXPIRE_MS) {
        t.present = false;
        this.events.lost(t.peer.id, 'silent');
      }
    }
  }
}

/** What a service record says about its machine (exported for the tests), or null if it is not a vOS agent. */
export function toPeer(service: Service): DiscoveredPeer | null {
  const txt = (service.txt ?? {}) as Record<string, unknown>;
  const id = typeof txt.id === 'string' ? txt.id : '';
  if (!isDeviceId(id)) return null;
  // TXT values longer than a HELLO allows are not taken at all; shorter ones are cleaned.
  const str = (key: string, max = PEER_FIELD_MAX): string => (typeof txt[key] === 'string' && (txt[key] as string).length <= 128 ? cleanPeerText(txt[key], max) : '');
  const hosts = [service.referer?.address, ...(service.addresses ?? [])].filter(
    (a, i, all): a is string => typeof a === 'string' && a.length > 0 && all.indexOf(a) === i,
  );
  return {
    id,
    name: str('name', PEER_NAME_MAX) || cleanPeerText(service.name, PEER_NAME_MAX) || id.slice(0, 12),
    version: str('version'),
    os: str('os'),
    arch: str('arch'),
    addresses: hosts.map((h) => (h.includes(':') ? `[${h}]:${service.port}` : `${h}:${service.port}`)),
  };
}
