/**
 * One side of a relayed connection's path over the link: both ways between the two agents, able
 * to ride out a link that goes away and comes back. Each side numbers the bytes it sends, keeps
 * those the other side has not acknowledged, and says how far it has received (ACK frames, about
 * every 64 KiB and 200 ms). When the link goes, both sides keep their end (reading on until their
 * buffer holds BUFFER_LIMIT) for up to the outage time; the target then opens new streams saying
 * how far it got, the anchor answers with how far it got, and each sends again from there:
 * nothing lost or repeated. A side whose peer does not come back in time resets its end.
 *
 * Inside each link stream, frames (big-endian): `u8 kind, u32 length, payload`:
 *   1 DATA   bytes (at most MAX_DATA)
 *   2 ACK    u64: the bytes of the other way received so far
 *   3 EOF    no more bytes this way
 *   4 RESET  the sender's end was reset (payload: why): a deliberate end, not the link's
 *   5 MOVED  to the anchor, after the last byte: the connection goes on with another machine
 *            (payload: JSON, see relay-handoff.ts); the sender's streams end here
 *   6 HANDOFF from a relaying machine, after the last byte: go on straight with the anchor
 *            (payload: JSON, see relay-handoff.ts); no more bytes come this way
 * A stream that ends without EOF or RESET, or is reset by the link, is the link going away.
 */
import type { IncomingStream, OutgoingStream } from '../community/link-streams.js';

const DATA = 1;
const ACK = 2;
const EOF = 3;
const RESET = 4;
const MOVED = 5;
const HANDOFF = 6;
const HEAD = 5;
const MAX_DATA = 64 * 1024;
/** Unacknowledged bytes a side keeps before it stops reading its end. */
export const BUFFER_LIMIT = 8 * 1024 * 1024;
const ACK_EVERY_BYTES = 64 * 1024;
const ACK_EVERY_MS = 200;
/** Unacknowledged bytes under which a side counts as flowing (a chain is cut only then). */
const FLOWING_BYTES = 1024 * 1024;

/** Where a channel's bytes come from and go to: the program's socket (target) or the anchor (source). */
export interface ChannelEnd {
  /** Bytes from the other side, in order. False: hold back (call `channel.resumeIncoming()` later). */
  write(data: Buffer): boolean;
  /** The other side has no more bytes. */
  end(): void;
  /** The connection is over: the other side was reset, or the link did not come back. */
  reset(why: string): void;
  /** Stop / go on reading this end (the channel's buffer is full / has room again). */
  pause(): void;
  resume(): void;
}

/** Where a channel starts when it takes a connection over from another one (a handoff). */
export interface ChannelStart {
  /** Bytes of the other way already had (the other side sends from there). */
  received: number;
  /** Bytes of ours the other side already has. */
  sent: number;
  /** Ours that follow those, not yet acknowledged by anyone. */
  kept: Buffer[];
}

export class RelayChannel {
  /** Bytes sent (and kept until acknowledged): [acked, acked + kept.length). */
  private acked = 0;
  private kept: Buffer[] = [];
  private keptBytes = 0;
  private ended = false; // our end said EOF: sent after the kept bytes
  /** Bytes of the other way received and handed to our end. */
  private received = 0;
  private ackedToPeer = 0;
  private peerEnded = false;
  private out: OutgoingStream | null = null;
  private incoming: IncomingStream | null = null;
  private pending: Buffer = Buffer.alloc(0);
  private ackTimer: NodeJS.Timeout | null = null;
  private outageTimer: NodeJS.Timeout | null = null;
  private paused = false;
  /** Our end cannot take more for now: the other side's stream is not read (kept across new streams). */
  private holding = false;
  /** Our end was reset before there were streams: said as soon as there are. */
  private resetWhy: string | null = null;
  closed = false;
  /** Our last word instead of EOF: HANDOFF's payload (sent after the kept bytes, again on new streams). */
  private handoff: Buffer | null = null;
  /** Called when the link went away (the streams broke without a word): the target tries to resume. */
  onLinkLost: (() => void) | null = null;
  /** The anchor's side: the other side said MOVED (its streams are dropped; the payload says where it went). */
  onMoved: ((payload: Buffer) => void) | null = null;
  /** The target's side: the other side said HANDOFF, after every byte before it was handed to our end. */
  onHandoff: ((payload: Buffer) => void) | null = null;

  constructor(
    private readonly end: ChannelEnd,
    private readonly outageMs: number,
    start?: ChannelStart,
  ) {
    if (start) {
      this.received = this.ackedToPeer = start.received;
      this.acked = start.sent;
      for (const b of start.kept) this.send(b);
    }
  }

  /** How far this side has received (for the other side to send again from). */
  get receivedBytes(): number {
    return this.received;
  }

  /** How many bytes our end has given (acknowledged or kept). */
  get sentBytes(): number {
    return this.acked + this.keptBytes;
  }

  /** Our end said it has no more bytes (EOF). */
  get finished(): boolean {
    return this.ended && this.handoff === null;
  }

  /** The other side takes what our end gives: little of it waits for its acknowledgement. */
  get flowing(): boolean {
    return !this.paused && this.keptBytes < FLOWING_BYTES;
  }

  /** It has streams to the other side now (the link is there). */
  get connected(): boolean {
    return this.out !== null;
  }

  /** Our end is paused: the channel holds its limit. */
  get full(): boolean {
    return this.paused;
  }

  /** Neither way has ended: a connection that can be handed on whole. */
  get open(): boolean {
    return !this.closed && !this.ended && !this.peerEnded && this.resetWhy === null && this.handoff === null;
  }

  /** Our bytes from `offset` on (kept, not acknowledged): what a channel that takes over sends first. */
  keptFrom(offset: number): Buffer[] | null {
    if (offset < this.acked || offset > this.acked + this.keptBytes) return null;
    const out: Buffer[] = [];
    let skip = offset - this.acked;
    for (const b of this.kept) {
      if (skip >= b.length) {
        skip -= b.length;
        continue;
      }
      out.push(skip ? b.subarray(skip) : b);
      skip = 0;
    }
    return out;
  }

  /**
   * New streams (the first, or after the link came back): everything from `peerReceived` (what
   * the other side said it has) is sent again. False: the other side claims bytes we never
   * sent, or ones we no longer keep (the connection cannot go on; it is reset).
   */
  connect(out: OutgoingStream, incoming: IncomingStream, peerReceived: number): boolean {
    if (this.resetWhy !== null) {
      // Reset before the other side was there: it hears so now, and that is all.
      this.out = out;
      this.frame(RESET, Buffer.from(this.resetWhy));
      this.out = null;
      out.end();
      incoming.on('error', () => {});
      incoming.resume();
      return true;
    }
    if (this.closed) return false;
    if (peerReceived < this.acked || peerReceived > this.acked + this.keptBytes) {
      this.fail(`the other side asked for bytes from ${peerReceived}, which this side no longer has`);
      return false;
    }
    this.dropStreams();
    if (this.outageTimer) clearTimeout(this.outageTimer);
    this.outageTimer = null;
    this.acknowledge(peerReceived);
    this.out = out;
    this.incoming = incoming;
    out.on('error', () => this.linkLost(out));
    incoming.on('data', (chunk: Buffer) => this.fromPeer(chunk));
    incoming.on('end', () => this.linkLost(incoming)); // an end without EOF/RESET frame: the link's doing
    incoming.on('error', () => this.linkLost(incoming));
    if (this.holding) incoming.pause();
    for (const b of this.kept) this.frame(DATA, b);
    if (this.handoff) this.frame(HANDOFF, this.handoff);
    else if (this.ended) this.frame(EOF);
    this.ackTimer ??= setInterval(() => this.sendAck(false), ACK_EVERY_MS);
    this.ackTimer.unref();
    return true;
  }

  /** Bytes from our end. False: the buffer is full (our end is paused until it drains). */
  send(data: Buffer): boolean {
    if (this.closed || this.ended) return true;
    for (let at = 0; at < data.length; at += MAX_DATA) {
      const piece = data.subarray(at, at + MAX_DATA);
      this.kept.push(piece);
      this.keptBytes += piece.length;
      if (this.out) this.frame(DATA, piece);
    }
    if (this.keptBytes >= BUFFER_LIMIT && !this.paused) {
      this.paused = true;
      this.end.pause();
    }
    return !this.paused;
  }

  /** Our end has no more bytes. */
  finish(): void {
    if (this.closed || this.ended) return;
    this.ended = true;
    if (this.out) this.frame(EOF);
    this.closeIfDone();
  }

  /**
   * The relaying side's last word: after the bytes sent so far, the other side goes on straight
   * with the anchor (`payload`). Nothing more is sent this way; the other side answers EOF once
   * it has taken it, and the channel closes when it has acknowledged every byte.
   */
  handOff(payload: Buffer): void {
    if (this.closed || this.ended) return;
    this.ended = true;
    this.handoff = payload;
    if (this.out) this.frame(HANDOFF, payload);
  }

  /**
   * To the anchor, after the bytes sent so far: the connection goes on with another machine
   * (`payload`). This side is done: its streams end, nothing is reset.
   */
  moveTo(payload: Buffer): void {
    if (this.closed || !this.out) return;
    this.frame(MOVED, payload);
    const out = this.out;
    this.close();
    this.dropStreams(out);
  }

  /**
   * The target's side, once HANDOFF was taken: the relaying machine hears EOF (and how far we
   * got) and this channel is over; what it kept goes on in the channel that takes over.
   */
  release(): void {
    if (this.closed) return;
    this.sendAck(true);
    if (this.out) this.frame(EOF);
    const out = this.out;
    this.close();
    this.dropStreams(out);
  }

  /** Our end was reset: the other side hears it and resets its end; this one is over. */
  reset(why: string): void {
    if (this.closed) return;
    const words = why.slice(0, 500);
    if (this.out) this.frame(RESET, Buffer.from(words));
    else this.resetWhy = words;
    this.close();
    this.out?.end();
  }

  /** Our end cannot take more for now (it said so later than its `write`): nothing more comes until `resumeIncoming`. */
  holdIncoming(): void {
    this.holding = true;
    this.incoming?.pause();
  }

  /** Our end took what it held back: more may come. */
  resumeIncoming(): void {
    this.holding = false;
    this.incoming?.resume();
  }

  /** The link went away for good (or this agent stops): our end is reset without a word. */
  fail(why: string): void {
    if (this.closed) return;
    this.close();
    this.dropStreams();
    this.end.reset(why);
  }

  private fromPeer(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    let at = 0;
    while (this.pending.length - at >= HEAD && !this.closed) {
      const kind = this.pending.readUInt8(at);
      const len = this.pending.readUInt32BE(at + 1);
      if (len > MAX_DATA) return this.fail('the other side sent a frame too long');
      if (this.pending.length - at < HEAD + len) break;
      const payload = this.pending.subarray(at + HEAD, at + HEAD + len);
      at += HEAD + len;
      if (kind === DATA) {
        this.received += payload.length;
        if (!this.end.write(Buffer.from(payload))) this.holdIncoming();
        if (this.received - this.ackedToPeer >= ACK_EVERY_BYTES) this.sendAck(true);
      } else if (kind === ACK && len === 8) {
        this.acknowledge(Number(payload.readBigUInt64BE(0)));
      } else if (kind === EOF) {
        this.peerEnded = true;
        this.sendAck(true);
        this.end.end();
        this.closeIfDone();
      } else if (kind === RESET) {
        this.close();
        this.end.reset(`reset by the other side: ${payload.toString('utf8')}`);
      } else if (kind === MOVED && this.onMoved) {
        // Every byte of the other way came before this; the next streams come from where it went.
        this.pending = this.pending.subarray(at);
        this.dropStreams();
        this.outageTimer ??= setTimeout(() => this.fail(`the connection did not go on within ${this.outageMs / 1000} s of its move`), this.outageMs);
        this.onMoved(Buffer.from(payload));
        return;
      } else if (kind === HANDOFF && this.onHandoff) {
        this.peerEnded = true;
        this.onHandoff(Buffer.from(payload));
        return;
      } else {
        return this.fail(`the other side sent a frame of unknown kind ${kind}`);
      }
    }
    this.pending = this.pending.subarray(at);
  }

  /** The other side has `upTo` bytes: those need not be kept any more. */
  private acknowledge(upTo: number): void {
    if (upTo <= this.acked || upTo > this.acked + this.keptBytes) return;
    let drop = upTo - this.acked;
    this.acked = upTo;
    while (drop > 0 && this.kept.length) {
      const first = this.kept[0]!;
      if (first.length <= drop) {
        this.kept.shift();
        drop -= first.length;
        this.keptBytes -= first.length;
      } else {
        this.kept[0] = first.subarray(drop);
        this.keptBytes -= drop;
        drop = 0;
      }
    }
    if (this.paused && this.keptBytes < BUFFER_LIMIT / 2) {
      this.paused = false;
      this.end.resume();
    }
    this.closeIfDone();
  }

  private sendAck(force: boolean): void {
    if (!this.out || this.closed || (!force && this.received === this.ackedToPeer)) return;
    const n = Buffer.alloc(8);
    n.writeBigUInt64BE(BigInt(this.received));
    this.ackedToPeer = this.received;
    this.frame(ACK, n);
  }

  private frame(kind: number, payload: Buffer = Buffer.alloc(0)): void {
    const head = Buffer.allocUnsafe(HEAD);
    head.writeUInt8(kind, 0);
    head.writeUInt32BE(payload.length, 1);
    this.out!.write(payload.length ? Buffer.concat([head, payload]) : head);
  }

  /** Both ways ended and every byte we sent acknowledged: the streams end. */
  private closeIfDone(): void {
    if (this.closed || !this.ended || !this.peerEnded || this.keptBytes > 0) return;
    this.sendAck(true);
    this.close();
    this.out?.end();
  }

  private linkLost(stream: OutgoingStream | IncomingStream): void {
    if (this.closed || (stream !== this.out && stream !== this.incoming)) return;
    this.dropStreams();
    this.outageTimer ??= setTimeout(() => this.fail(`the link was gone for ${this.outageMs / 1000} s`), this.outageMs);
    this.onLinkLost?.();
  }

  /**
   * Our streams go. `ending`, our outgoing one, ends after what was written to it, and the
   * incoming one is read to its end and dropped: the other side is told nothing before our last
   * frame has reached it (a reset of its outgoing stream could come first, and it would take
   * that for the link going away). Otherwise both are reset.
   */
  private dropStreams(ending: OutgoingStream | null = null): void {
    const { out, incoming } = this;
    this.out = this.incoming = null;
    this.pending = Buffer.alloc(0);
    out?.removeAllListeners('error');
    out?.on('error', () => {});
    incoming?.removeAllListeners('data').removeAllListeners('end').removeAllListeners('error');
    incoming?.on('error', () => {});
    const gently = out !== null && out === ending;
    if (gently && !out.destroyed && !out.writableEnded) out.end();
    else if (out && !out.destroyed && !out.writableEnded) out.destroy();
    if (gently && incoming && !incoming.destroyed) incoming.resume();
    else if (incoming && !incoming.destroyed) incoming.destroy();
  }

  private close(): void {
    this.closed = true;
    if (this.ackTimer) clearInterval(this.ackTimer);
    if (this.outageTimer) clearTimeout(this.outageTimer);
    this.ackTimer = this.outageTimer = null;
  }
}
