/**
 * The source half of a moved session's connections to outside its pod. The checkpoint helper
 * kept the real sockets (runtime/init/anchor.c) and speaks anchor frames with us over its fd 4;
 * per connection the target's agent opens a link stream (`{relay: MIGRATION, object: N,
 * received}`: the program's bytes) and we open one back (`{relayDown: MIGRATION, object: N,
 * what, received}`: what the socket receives), both carrying a RelayChannel's frames: a link
 * that goes away and comes back within the outage time loses nothing (the target opens new
 * streams; each side sends again from where the other got).
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

/** What a relay opens link streams with (the community). */
export interface StreamOpener {
  openStream(peerId: string, meta: unknown): OutgoingStream;
}

interface AnchoredConnection {
  what: string;
  channel: RelayChannel;
  /** The helper has closed it (both ways ended, or reset). */
  closed: boolean;
  /** The helper said its socket holds all it will take from us for now (FULL, not ROOM since). */
  full: boolean;
}

export class Anchor {
  private readonly conns = new Map<number, AnchoredConnection>();
  private readonly decoder = new AnchorFrameDecoder();
  /** Connections whose bytes wait for the helper's pipe to drain. */
  private readonly draining = new Set<number>();
  private ended = false;
  /** Called once the helper is gone (every connection has ended, or it failed). */
  onEnd: (() => void) | null = null;

  constructor(
    readonly migration: string,
    readonly peer: PeerRef,
    private readonly pipe: Duplex,
    relayed: Map<number, string>,
    private readonly links: StreamOpener,
    private readonly log: (message: string) => void,
  ) {
    for (const [id, what] of relayed) this.conns.set(id, { what, channel: this.channelFor(id, what), closed: false, full: false });
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
   * came back; `received`: how far the target got. False: no such connection (refused).
   */
  attach(object: number, up: IncomingStream, received: number): boolean {
    const c = this.conns.get(object);
    if (!c || this.ended) return false;
    const down = this.links.openStream(this.peer.id, { relayDown: this.migration, object, what: c.what, received: c.channel.receivedBytes });
    down.on('error', () => {}); // the channel hears of it
    if (!c.channel.connect(down, up, received)) {
      down.destroy();
      return false;
    }
    return true;
  }

  /**
   * Lets go of them: before the commit (the move did not happen) the helper keeps nothing and
   * the program has its sockets again; after it (this agent stops) the helper resets them, and
   * the target hears so.
   */
  discard(why = 'the move was called off'): void {
    for (const c of this.conns.values()) c.channel.reset(why);
    this.end(why);
    this.pipe.destroy();
  }

  private channelFor(id: number, what: string): RelayChannel {
    return new RelayChannel(
      {
        write: (data) => {
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
      else if (f.type === ANCHOR_EOF) c.channel.finish();
      else if (f.type === ANCHOR_RESET) {
        c.closed = true;
        c.channel.reset(`the connection failed where it is kept: ${f.payload.toString('utf8') || 'reset'}`);
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

  private send(frame: Buffer): void {
    if (!this.ended) this.pipe.write(frame);
  }

  private end(why: string): void {
    if (this.ended) return;
    this.ended = true;
    // The helper is gone: what it still kept is lost, and the target hears so.
    for (const c of this.conns.values()) if (!c.closed) c.channel.reset(why);
    this.onEnd?.();
  }
}
