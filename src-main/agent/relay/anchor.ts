/**
 * The source half of a moved session's connections to outside its pod. The checkpoint helper
 * kept the real sockets (runtime/init/anchor.c) and speaks anchor frames with us over its fd 4;
 * per connection the target's agent opens a link stream (`{relay: MIGRATION, object: N,
 * received}`: the program's bytes) and we open one back (`{relayDown: MIGRATION, object: N,
 * what, received}`: what the socket receives), both carrying a RelayChannel's frames: a link
 * that goes away and comes back within the outage time loses nothing (the target opens new
 * streams; each side sends again from where the other got).
 *
 * Chains are made straight (relay-handoff.ts): a kept connection that is one this machine
 * relays itself (the session came here by a move) is handed on, once the move is committed,
 * so that the next machine talks to the anchor directly; and on the anchor, a connection goes
 * on with the machine its relaying machine's MOVED names.
 */
import type { Duplex } from 'node:stream';
import type { PeerRef } from '../../api/protocol.js';
import type { IncomingStream, OutgoingStream } from '../community/link-streams.js';
import { RELAY_OUTAGE_MS } from '../community/link-timing.js';
import {
  ANCHOR_CLOSED,
  ANCHOR_DATA,
  ANCHOR_EOF,
  ANCHOR_FULL,
  ANCHOR_PAUSE,
  ANCHOR_RESET,
  ANCHOR_RESUME,
  ANCHOR_ROOM,
  AnchorFrameDecoder,
  encodeAnchorData,
  encodeAnchorFrame,
} from './anchor-frames.js';
import { RelayChannel } from './relay-channel.js';
import { encodeHandoff, parseMoved } from './relay-handoff.js';
import type { RelayedSocket } from './relayed-socket.js';

/** What a relay opens link streams with (the community). */
export interface StreamOpener {
  openStream(peerId: string, meta: unknown): OutgoingStream;
}

/** What the helper keeps: the connection in words, and the relayed socket here it is the other end of, if any. */
export interface KeptHere {
  what: string;
  relayedHere: RelayedSocket | null;
}

/** A target's stream that came before the MOVED that names its machine. */
interface EarlyStream {
  peerId: string;
  up: IncomingStream;
  received: number;
  reach: string[];
  timer: NodeJS.Timeout;
}

const EARLY_STREAM_MS = 10_000;
const HANDOFF_RETRY_MS = 500;

interface AnchoredConnection {
  what: string;
  channel: RelayChannel;
  /** The helper has closed it (both ways ended, or reset). */
  closed: boolean;
  /** The helper said its socket holds all it will take from us for now (FULL, not ROOM since). */
  full: boolean;
  /** The machine whose streams carry it: the move's target, or where it went on from there. */
  peerId: string;
  /** Its streams are there (the target attached). */
  attached: boolean;
  /** The peers the target said it has a link to (and itself). */
  reach: string[];
  /** The relayed socket here whose other end it is: handed on, so the chain is made straight. */
  relayedHere: RelayedSocket | null;
  handoff: 'none' | 'cutting' | 'done';
  /** During the cut: the target's bytes taken before it, and which ends have said their last byte. */
  upTaken: number;
  downDone: boolean;
  upDone: boolean;
  early: EarlyStream | null;
}

export class Anchor {
  private readonly conns = new Map<number, AnchoredConnection>();
  private readonly decoder = new AnchorFrameDecoder();
  /** Connections whose bytes wait for the helper's pipe to drain. */
  private readonly draining = new Set<number>();
  private ended = false;
  /** The move is committed: the helper relays, and chains may be made straight. */
  private isCommitted = false;
  private retry: NodeJS.Timeout | null = null;
  /** Called once the helper is gone (every connection has ended, or it failed). */
  onEnd: (() => void) | null = null;

  constructor(
    readonly migration: string,
    readonly peer: PeerRef,
    private readonly pipe: Duplex,
    kept: Map<number, KeptHere>,
    private readonly links: StreamOpener,
    private readonly log: (message: string) => void,
  ) {
    for (const [id, k] of kept) {
      const channel = this.channelFor(id, k.what);
      channel.onMoved = (payload) => this.moved(id, payload);
      this.conns.set(id, {
        what: k.what, channel, closed: false, full: false, peerId: peer.id, attached: false, reach: [],
        relayedHere: k.relayedHere, handoff: 'none', upTaken: 0, downDone: false, upDone: false, early: null,
      });
    }
    pipe.on('data', (chunk: Buffer) => this.fromAnchor(chunk));
    pipe.on('drain', () => {
      for (const id of this.draining) {
        const c = this.conns.get(id);
        if (c && !c.full) c.channel.resumeIncoming();
      }
      this.draining.clear();
    });
    pipe.on('error', () => this.end('the connections kept for it were lost here'));
    pipe.on('close', () => this.end('the connections kept for it were lost here'));
  }

  /** The connections it keeps, in words. */
  get what(): string[] {
    return [...this.conns.values()].map((c) => c.what);
  }

  /**
   * The target's stream of connection `object` (the program's bytes), first or after the link
   * came back; `received`: how far the target got; `reach`: the peers it has a link to. False:
   * no such connection from that peer (refused). A stream from another machine waits a little
   * for the MOVED that may name it.
   */
  attach(peerId: string, object: number, up: IncomingStream, received: number, reach: string[]): boolean {
    const c = this.conns.get(object);
    if (!c || this.ended) return false;
    if (c.peerId !== peerId) {
      if (c.handoff !== 'none' || c.closed) return false;
      if (c.early) c.early.up.refuse('a newer stream came');
      if (c.early) clearTimeout(c.early.timer);
      const timer = setTimeout(() => {
        if (c.early?.up === up) c.early = null;
        up.refuse('no such relayed connection here');
      }, EARLY_STREAM_MS);
      timer.unref();
      c.early = { peerId, up, received, reach, timer };
      return true;
    }
    const down = this.links.openStream(c.peerId, { relayDown: this.migration, object, what: c.what, received: c.channel.receivedBytes });
    down.on('error', () => {}); // the channel hears of it
    if (!c.channel.connect(down, up, received)) {
      down.destroy();
      return false;
    }
    c.attached = true;
    c.reach = reach;
    this.handOnSoon();
    return true;
  }

  /** The move is committed (the original ended): the helper relays now, and chains may be made straight. */
  committed(): void {
    this.isCommitted = true;
    this.handOnSoon();
  }

  /**
   * Lets go of them: before the commit (the move did not happen) the helper keeps nothing and
   * the program has its sockets again; after it (this agent stops) the helper resets them, and
   * the target hears so.
   */
  discard(why = 'the move was called off'): void {
    for (const c of this.conns.values()) {
      c.channel.reset(why);
      if (c.handoff === 'cutting') c.relayedHere?.abandonCut(why);
    }
    this.end(why);
    this.pipe.destroy();
  }

  private channelFor(id: number, what: string): RelayChannel {
    return new RelayChannel(
      {
        write: (data) => {
          if (this.conns.get(id)?.handoff === 'done') return true; // the target's, after the cut: it sends them to the anchor itself
          let ok = true;
          for (const frame of encodeAnchorData(id, data)) ok = this.pipe.write(frame);
          if (!ok) this.draining.add(id);
          return ok && !this.conns.get(id)?.full;
        },
        end: () => this.send(encodeAnchorFrame(ANCHOR_EOF, id)),
        reset: (why) => {
          this.send(encodeAnchorFrame(ANCHOR_RESET, id));
          this.log(`relay of ${what} (migration ${this.migration}): ${why}; the connection is reset`);
        },
        // Its channel holds its limit: the helper stops reading this socket only.
        pause: () => this.send(encodeAnchorFrame(ANCHOR_PAUSE, id)),
        resume: () => this.send(encodeAnchorFrame(ANCHOR_RESUME, id)),
      },
      RELAY_OUTAGE_MS,
    );
  }

  private fromAnchor(chunk: Buffer): void {
    let frames;
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.log(`relay for migration ${this.migration}: ${(err as Error).message}`);
      this.pipe.destroy();
      return;
    }
    for (const f of frames) {
      const c = this.conns.get(f.conn);
      if (!c) continue;
      if (f.type === ANCHOR_DATA) c.channel.send(f.payload);
      else if (f.type === ANCHOR_EOF && c.handoff === 'cutting') {
        c.downDone = true; // what the program here never read has all gone to the target
        this.finishHandOn(f.conn);
      } else if (f.type === ANCHOR_EOF) c.channel.finish();
      else if (f.type === ANCHOR_RESET) {
        c.closed = true;
        c.channel.reset(`the connection failed where it is kept: ${f.payload.toString('utf8') || 'reset'}`);
        if (c.handoff === 'cutting') c.relayedHere?.abandonCut('the connection failed while it was handed on');
      } else if (f.type === ANCHOR_CLOSED) c.closed = true;
      else if (f.type === ANCHOR_FULL) {
        // The server does not take what we send: this connection's stream waits, the others go on.
        c.full = true;
        c.channel.holdIncoming();
      } else if (f.type === ANCHOR_ROOM) {
        c.full = false;
        if (!this.draining.has(f.conn)) c.channel.resumeIncoming();
      }
    }
  }

  /** Anchor's side: the relaying machine said the connection goes on with another one. */
  private moved(id: number, payload: Buffer): void {
    const c = this.conns.get(id);
    const peerId = parseMoved(payload);
    if (!c) return;
    if (!peerId) {
      c.channel.reset('the relaying machine sent a malformed move');
      return;
    }
    this.log(`relay of ${c.what} (migration ${this.migration}): it goes on with ${peerId.slice(0, 8)}, straight from here`);
    c.peerId = peerId;
    c.attached = false;
    const early = c.early;
    if (early?.peerId === peerId) {
      c.early = null;
      clearTimeout(early.timer);
      if (!this.attach(peerId, id, early.up, early.received, early.reach)) early.up.refuse('no such relayed connection here');
    }
  }

  /** Soon (not in the caller's turn): every connection that can be handed on now is. */
  private handOnSoon(delay = 0): void {
    if (this.retry || this.ended) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      let again = false;
      for (const id of this.conns.keys()) again = this.startHandOn(id) || again;
      if (again) this.handOnSoon(HANDOFF_RETRY_MS);
    }, delay);
    this.retry.unref();
  }

  /**
   * Starts the cut of connection `id` if it is one this machine relays and it can go (see
   * relay-handoff.ts). True: not yet (bytes are under way), ask again a little later.
   */
  private startHandOn(id: number): boolean {
    const c = this.conns.get(id)!;
    const here = c.relayedHere;
    if (!here || c.handoff !== 'none' || c.closed || this.ended) return false;
    // Asked again when they are: the commit, the target's streams.
    if (!this.isCommitted || !c.attached) return false;
    // The target cannot reach the anchor, or a way has ended: it stays relayed through here.
    if (!c.reach.includes(here.anchor.id) || !c.channel.open) return false;
    if (!here.canHandOn || c.full) return !here.closed;
    c.handoff = 'cutting';
    c.upTaken = c.channel.receivedBytes;
    c.channel.holdIncoming();
    this.send(encodeAnchorFrame(ANCHOR_EOF, id)); // the helper writes what it has, then shuts the socket down for writing
    here.cut(() => {
      c.upDone = true;
      this.finishHandOn(id);
    });
    return false;
  }

  private finishHandOn(id: number): void {
    const c = this.conns.get(id)!;
    const here = c.relayedHere!;
    if (c.handoff !== 'cutting' || !c.downDone || !c.upDone) return;
    const { down, up } = here.handOn(c.peerId);
    c.channel.handOff(encodeHandoff({ anchor: here.anchor, migration: here.migration, object: here.object, down, up, upTaken: c.upTaken }));
    c.handoff = 'done';
    c.channel.resumeIncoming();
    this.log(`relay of ${c.what} (migration ${this.migration}): handed on, straight to ${here.anchor.name}, at byte ${down} down, ${up} up`);
  }

  private send(frame: Buffer): void {
    if (!this.ended) this.pipe.write(frame);
  }

  private end(why: string): void {
    if (this.ended) return;
    this.ended = true;
    if (this.retry) clearTimeout(this.retry);
    // The helper is gone: what it still kept is lost, and the target hears so.
    for (const c of this.conns.values()) {
      if (c.early) clearTimeout(c.early.timer);
      c.early?.up.refuse(why);
      if (!c.closed && c.handoff !== 'done') c.channel.reset(why);
    }
    this.onEnd?.();
  }
}
