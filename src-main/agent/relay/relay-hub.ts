/**
 * A moved session's connections to outside its pod stay open on the machine it left (the
 * anchor: anchor.ts) and reach the program on its new machine through both agents over their
 * link (relayed-socket.ts, relay-endpoint.ts). The hub is where the agent keeps them: the
 * anchors of sessions that left, the relayed sockets of sessions that came, and the routing of
 * the link streams that carry them.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { PeerRef, RelayedConnection } from '../../api/protocol.js';
import { cleanPeerText } from '../../base/peer-text.js';
import type { IncomingStream } from '../community/link-streams.js';
import type { KeptConnection } from '../runtime/checkpoint-helper.js';
import { Anchor, type KeptHere, type StreamOpener } from './anchor.js';
import { loopbackPair } from './loopback-stream.js';
import { RelayEndpoint } from './relay-endpoint.js';
import { byteCount, parseReach } from './relay-handoff.js';
import { RelayedSocket } from './relayed-socket.js';

/** What the relays need of the community: streams to peers, and which peers are linked. */
export interface RelayLinks extends StreamOpener {
  /** This machine's device id. */
  readonly id: string;
  connectedPeers(): Array<{ id: string }>;
}

/** A restore that may bring relayed connections (the target of a move). */
export interface IncomingRelays {
  /** For the restorer's environment. */
  env: Record<string, string>;
  /** No more connections for it (the restore is over). */
  close(): void;
  /** Its connections that are open, for the session's info. */
  list(): RelayedConnection[];
  /** Called when the list changes (a connection named by the source, or ended). */
  onChange: (() => void) | null;
}

/** A target's stream that came before its anchor here was made waits this long, and this many at most. */
const PARKED_MS = 10_000;
const MAX_PARKED = 64;

interface Parked {
  migration: string;
  peerId: string;
  object: number;
  stream: IncomingStream;
  received: number;
  reach: string[];
  timer: NodeJS.Timeout;
}

export class RelayHub {
  private readonly anchors = new Map<string, Anchor>();
  /**
   * Target streams for an anchor not made yet: the target restores as the last of the image
   * arrives, and may open them just before this agent has made the anchor of that move.
   */
  private readonly parked: Parked[] = [];
  /** By migration, then object id. */
  private readonly relayed = new Map<string, Map<number, RelayedSocket>>();
  private readonly endpoint: RelayEndpoint;

  constructor(
    stateDir: string,
    private readonly links: () => RelayLinks,
    private readonly log: (message: string) => void,
  ) {
    this.endpoint = new RelayEndpoint(stateDir, log);
  }

  /**
   * Streams for the relays: to a peer over its link, or to this machine itself (a session back
   * on the machine that keeps its connection) inside this agent.
   */
  private readonly opener: StreamOpener = {
    openStream: (peerId, meta) => {
      const links = this.links();
      if (peerId !== links.id) return links.openStream(peerId, meta);
      const { out, incoming } = loopbackPair(meta);
      setImmediate(() => {
        if (!this.stream({ id: peerId }, incoming)) incoming.refuse('not a relay stream');
      });
      return out;
    },
  };

  /** The peers this machine can reach, and itself (said to a relaying machine: may it cut itself out?). */
  private reach(): string[] {
    const links = this.links();
    return [links.id, ...links.connectedPeers().map((p) => p.id)];
  }

  /**
   * Source: the helper of a held move kept `kept` (by object id); its frames come on `pipe`. A
   * kept connection that is one this agent relays itself (the session came here by a move, and
   * moves on) keeps the words it had.
   */
  anchor(migration: string, peer: PeerRef, pipe: Duplex, kept: Map<number, KeptConnection>): Anchor {
    const here = new Map<number, KeptHere>();
    for (const [id, k] of kept) {
      const relayed = this.relayedHere(k) ?? null;
      here.set(id, { what: relayed?.what || k.what, relayedHere: relayed });
    }
    const anchor = new Anchor(migration, peer, pipe, here, this.opener, this.log);
    this.anchors.set(migration, anchor);
    anchor.onEnd = () => {
      if (this.anchors.get(migration) === anchor) this.anchors.delete(migration);
    };
    for (const p of this.parked.filter((x) => x.migration === migration)) {
      this.parked.splice(this.parked.indexOf(p), 1);
      clearTimeout(p.timer);
      this.attach(p.peerId, migration, p.object, p.stream, p.received, p.reach);
    }
    return anchor;
  }

  /** Target: a move's restore from `peer`, whose relayed connections are to be taken. */
  async incoming(migration: string, peer: PeerRef): Promise<IncomingRelays> {
    const sockets = new Map<number, RelayedSocket>();
    this.relayed.set(migration, sockets);
    const expectation = await this.endpoint.expect((object: number, socket: Socket) => {
      if (sockets.has(object)) {
        socket.destroy();
        return;
      }
      const relayed = new RelayedSocket(migration, object, peer, socket, this.opener, this.log, () => this.reach());
      relayed.programName = socket.remotePort === undefined ? expectation.unixName(object) : '';
      sockets.set(object, relayed);
      relayed.onClose = () => {
        sockets.delete(object);
        if (sockets.size === 0 && this.relayed.get(migration) === sockets) this.relayed.delete(migration);
        incoming.onChange?.();
      };
      relayed.onNamed = () => incoming.onChange?.();
    });
    const incoming: IncomingRelays = {
      env: expectation.env,
      close: () => {
        expectation.cancel();
        if (sockets.size === 0 && this.relayed.get(migration) === sockets) this.relayed.delete(migration);
      },
      list: () => [...sockets.values()].filter((s) => !s.closed).map((s) => ({ what: s.what || 'a connection', via: s.anchor })),
      onChange: null,
    };
    return incoming;
  }

  /**
   * A link stream of a relay: the target's `{relay, object}` (here, the source) or the
   * source's `{relayDown, object, what}` (here, the target). False: not a relay's (the caller
   * routes it elsewhere). A stream that names no connection here is refused.
   */
  stream(peer: { id: string }, stream: IncomingStream): boolean {
    const meta = stream.meta as { relay?: unknown; relayDown?: unknown; object?: unknown; what?: unknown; received?: unknown; reach?: unknown } | null;
    const object = typeof meta?.object === 'number' && Number.isInteger(meta.object) ? meta.object : -1;
    // How far the other side got: a byte count (a wrong one makes the connection reset, nothing else).
    const received = byteCount(meta?.received) ?? -1;
    if (typeof meta?.relay === 'string') {
      const migration = meta.relay;
      const reach = parseReach(meta.reach);
      if (this.anchors.has(migration) || this.parked.length >= MAX_PARKED) {
        this.attach(peer.id, migration, object, stream, received, reach);
        return true;
      }
      const timer = setTimeout(() => {
        this.parked.splice(this.parked.indexOf(parked), 1);
        stream.refuse('no such relayed connection here');
      }, PARKED_MS);
      timer.unref();
      const parked: Parked = { migration, peerId: peer.id, object, stream, received, reach, timer };
      this.parked.push(parked);
      return true;
    }
    if (typeof meta?.relayDown === 'string') {
      const relayed = this.relayedFor(meta.relayDown, object);
      if (!relayed || relayed.anchor.id !== peer.id || received < 0 || !relayed.attachDown(stream, cleanPeerText(meta.what, 300), received)) {
        stream.refuse('no such relayed connection here');
      }
      return true;
    }
    return false;
  }

  private attach(peerId: string, migration: string, object: number, stream: IncomingStream, received: number, reach: string[]): void {
    const anchor = this.anchors.get(migration);
    if (!anchor || received < 0 || !anchor.attach(peerId, object, stream, received, reach)) {
      stream.refuse('no such relayed connection here');
    }
  }

  /**
   * The relayed socket here that is connection `object` of the anchor's move `migration` (a
   * socket that took a connection over from a relaying machine goes by the anchor's names).
   */
  private relayedFor(migration: string, object: number): RelayedSocket | undefined {
    for (const sockets of this.relayed.values()) {
      for (const s of sockets.values()) if (!s.closed && s.migration === migration && s.object === object) return s;
    }
    return undefined;
  }

  /**
   * The relayed socket here that `k` is, if any: a TCP one (IPv4 or IPv6) by its local port,
   * connected to our relay port; a Unix one by the name its restorer gave it, connected to our
   * relay socket.
   */
  private relayedHere(k: KeptConnection): RelayedSocket | undefined {
    const port = this.endpoint.port;
    const tcp = k.localPort !== 0 && port !== null && (k.what.endsWith(` 127.0.0.1:${port}`) || k.what.endsWith(` [::ffff:127.0.0.1]:${port}`));
    const unix = k.localName !== '' && k.what.endsWith(` ${this.endpoint.unixPath}`);
    if (!tcp && !unix) return undefined;
    for (const sockets of this.relayed.values()) {
      for (const s of sockets.values()) if (tcp ? s.programPort === k.localPort : s.programName === k.localName) return s;
    }
    return undefined;
  }

  /** Every kept and relayed connection ends (as a network failure would), and nothing listens. */
  async stop(): Promise<void> {
    for (const anchor of this.anchors.values()) anchor.discard('the agent stopped');
    this.anchors.clear();
    for (const p of this.parked.splice(0)) {
      clearTimeout(p.timer);
      p.stream.refuse('the agent stopped');
    }
    for (const sockets of this.relayed.values()) for (const s of sockets.values()) s.reset('the agent there stopped');
    this.relayed.clear();
    await this.endpoint.stop();
  }
}
