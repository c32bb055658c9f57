/**
 * The target half of one relayed connection: the restored program's socket (connected to our
 * relay endpoint) on one side, a RelayChannel to the machine that keeps the real socket on the
 * other, over two link streams: `up` (opened here: `{relay, object, received}`) and `down`
 * (opened there in answer: `{relayDown, object, what, received}`). When the link goes, the
 * program's socket stays as it is (its bytes wait in the channel) and new streams are asked for
 * every second until the link is back or the outage time has passed; then it is reset, as a
 * network failure would.
 *
 * A chain is made straight (relay-handoff.ts): when the session moves on from here, this
 * machine's part is cut out (`cut`, `handOn`), and the machine it went to takes the connection
 * over from where this one was (`takeHandoff`): it talks to the anchor itself.
 */
import type { Socket } from 'node:net';
import type { PeerRef } from '../../api/protocol.js';
import type { IncomingStream, OutgoingStream } from '../community/link-streams.js';
import { RELAY_OUTAGE_MS } from '../community/link-timing.js';
import type { StreamOpener } from './anchor.js';
import { RelayChannel, type ChannelEnd } from './relay-channel.js';
import { encodeMoved, parseHandoff } from './relay-handoff.js';

const RETRY_EVERY_MS = 1_000;

export class RelayedSocket {
  private channel: RelayChannel;
  private readonly end: ChannelEnd;
  /** Being cut out of a chain: called when the program's side has sent its last byte. */
  private cutting: (() => void) | null = null;
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
  /** A Unix one's: the abstract name its restorer gave it (relay-endpoint.ts); '' for none. */
  programName = '';

  constructor(
    /** The anchor's move and object id of the connection (they change when a chain is made straight). */
    public migration: string,
    public object: number,
    /** The machine that keeps the real socket. */
    public anchor: PeerRef,
    private readonly socket: Socket,
    private readonly links: StreamOpener,
    private readonly log: (message: string) => void,
    /** The peers this machine has a link to, and itself: said to the machine it relays with. */
    private readonly reach: () => string[] = () => [],
  ) {
    this.programPort = socket.remotePort ?? 0;
    this.end = {
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
      };
    this.channel = this.newChannel();
    socket.on('data', (data: Buffer) => this.channel.send(data));
    socket.on('end', () => (this.cutting ? this.cutting() : this.channel.finish()));
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

  private newChannel(start?: ConstructorParameters<typeof RelayChannel>[2]): RelayChannel {
    const channel = new RelayChannel(this.end, RELAY_OUTAGE_MS, start);
    channel.onLinkLost = () => this.reconnect();
    channel.onHandoff = (payload) => this.takeHandoff(payload);
    return channel;
  }

  /**
   * Both ways open, the link to the anchor there, and the anchor takes what we send: this machine can be cut out of the chain
   * (the cut waits for what the program's side has under way to reach the anchor).
   */
  get canHandOn(): boolean {
    return !this.closed && this.cutting === null && this.channel.open && this.channel.connected && this.channel.flowing;
  }

  /**
   * The session moved on from here (its kept socket, the other end of ours, is in the helper):
   * nothing more from the anchor is written into the socket, which is then shut down for
   * writing once what was written is (the helper reads it all, for the next machine); `upDone`
   * is called when the program's side has sent its last byte (every byte of it gone on in the
   * channel).
   */
  cut(upDone: () => void): void {
    this.cutting = upDone;
    this.channel.holdIncoming();
    this.socket.end();
  }

  /**
   * The cut is complete: the anchor hears that the connection goes on with `peerId`, and this
   * machine is out. Where it stands: `down`, the anchor's bytes written into the socket; `up`,
   * the program's side's bytes sent to the anchor.
   */
  handOn(peerId: string): { down: number; up: number } {
    const at = { down: this.channel.receivedBytes, up: this.channel.sentBytes };
    this.channel.moveTo(encodeMoved(peerId));
    this.socket.destroy();
    return at;
  }

  /** The connection's end here failed during the cut: it ends as a network failure would. */
  abandonCut(why: string): void {
    this.channel.reset(why);
    this.socket.resetAndDestroy();
  }

  /**
   * The machine we relayed with cut itself out: every byte before its word is in the socket, and
   * we go on straight with the anchor from where it stood. What we sent that it had not passed
   * on goes first.
   */
  private takeHandoff(payload: Buffer): void {
    const h = parseHandoff(payload);
    const kept = h ? this.channel.keptFrom(h.upTaken) : null;
    if (!h || !kept) {
      this.channel.reset(h ? 'the relaying machine handed the connection on from a byte this side no longer has' : 'the relaying machine sent a malformed handoff');
      this.socket.resetAndDestroy();
      return;
    }
    const ended = this.channel.finished;
    this.channel.release();
    const from = this.anchor.name;
    this.channel = this.newChannel({ received: h.down, sent: h.up, kept });
    if (ended) this.channel.finish();
    this.migration = h.migration;
    this.object = h.object;
    this.anchor = h.anchor;
    this.up = null;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    this.log(`relayed ${this.what || 'connection'}: ${from} handed it on; it goes on straight with ${h.anchor.name} from byte ${h.down} down, ${h.up} up`);
    if (!this.channel.full) this.socket.resume();
    this.open();
    this.onNamed?.();
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
      const up = this.links.openStream(this.anchor.id, { relay: this.migration, object: this.object, received: this.channel.receivedBytes, reach: this.reach() });
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
