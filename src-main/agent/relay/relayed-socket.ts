/**
 * The target half of one relayed connection: the restored program's socket (connected to our
 * relay endpoint) on one side, a RelayChannel to the machine that keeps the real socket on the
 * other, over two link streams: `up` (opened here: `{relay, object, received}`) and `down`
 * (opened there in answer: `{relayDown, object, what, received}`). When the link goes, the
 * program's socket stays as it is (its bytes wait in the channel) and new streams are asked for
 * every second until the link is back or the outage time has passed; then it is reset, as a
 * network failure would.
 */
import type { Socket } from 'node:net';
import type { PeerRef } from '../../api/protocol.js';
import type { IncomingStream, OutgoingStream } from '../community/link-streams.js';
import { RELAY_OUTAGE_MS } from '../community/link-timing.js';
import type { StreamOpener } from './anchor.js';
import { RelayChannel } from './relay-channel.js';

const RETRY_EVERY_MS = 1_000;

export class RelayedSocket {
  private readonly channel: RelayChannel;
  /** The up stream waiting for its down stream (the anchor's answer). */
  private up: OutgoingStream | null = null;
  private retry: NodeJS.Timeout | null = null;
  /** The link went away since the streams were last made. */
  private lost = false;
  /** What it is connected to, in words (from the source, once its stream came). */
  what = '';
  closed = false;
  onClose: (() => void) | null = null;
  /** Called when `what` is first known (the source's answer names the connection). */
  onNamed: (() => void) | null = null;
  /** The program's end's port (TCP; 0 for a Unix socket): how its next move knows it. */
  readonly programPort: number;

  constructor(
    readonly migration: string,
    readonly object: number,
    readonly anchor: PeerRef,
    private readonly socket: Socket,
    private readonly links: StreamOpener,
    private readonly log: (message: string) => void,
  ) {
    this.programPort = socket.remotePort ?? 0;
    this.channel = new RelayChannel(
      {
        write: (data) => {
          const ok = socket.write(data);
          if (!ok) socket.once('drain', () => this.channel.resumeIncoming());
          return ok;
        },
        end: () => socket.end(),
        reset: (why) => {
          if (!this.closed) this.log(`relayed ${this.what || 'connection'} (migration ${migration}): ${why}; reset`);
          socket.resetAndDestroy();
        },
        pause: () => socket.pause(),
        resume: () => socket.resume(),
      },
      RELAY_OUTAGE_MS,
    );
    this.channel.onLinkLost = () => this.reconnect();
    socket.on('data', (data: Buffer) => this.channel.send(data));
    socket.on('end', () => this.channel.finish());
    // The program reset it (closed with unread data, or SO_LINGER 0): the server sees a reset.
    socket.on('error', (err: Error) => this.channel.reset(`the program's side failed: ${err.message}`));
    // Closed cleanly (both ways ended), the channel finishes by itself once the source has all.
    socket.on('close', () => {
      this.closed = true;
      if (this.retry) clearTimeout(this.retry);
      this.onClose?.();
    });
    this.open();
    socket.resume();
  }

  /** The source's answer to our up stream: what the real socket receives, and how far it got ours. */
  attachDown(down: IncomingStream, what: string, received: number): boolean {
    const up = this.up;
    if (!up || this.closed) return false;
    this.up = null;
    const named = this.what === '';
    this.what = what;
    if (!this.channel.connect(up, down, received)) return false;
    if (named) this.onNamed?.();
    if (this.lost) this.log(`relayed ${what} (migration ${this.migration}): the link is back: it goes on from byte ${this.channel.receivedBytes} down, ${received} up`);
    this.lost = false;
    return true;
  }

  /** Ends it as a network failure would (the program sees a reset; the source hears so). */
  reset(why = 'the agent here stopped'): void {
    this.channel.reset(why);
    this.socket.resetAndDestroy();
  }

  /** An up stream saying how far we got; the source answers with a down stream. */
  private open(): void {
    try {
      const up = this.links.openStream(this.anchor.id, { relay: this.migration, object: this.object, received: this.channel.receivedBytes });
      up.on('error', () => {
        if (this.up === up) {
          this.up = null;
          this.reconnect(); // refused or the link went again: asked again while the outage time lasts
        }
      });
      this.up = up;
    } catch {
      this.reconnect(); // no link right now
    }
  }

  private reconnect(): void {
    this.lost = true;
    if (this.closed || this.channel.closed || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      if (!this.closed && !this.channel.closed) this.open();
    }, RETRY_EVERY_MS);
    this.retry.unref();
  }
}
