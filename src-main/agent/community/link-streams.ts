/**
 * Bulk byte streams over a link, with credit-based flow control: a receiver lets the sender
 * have INITIAL_WINDOW bytes, and grants more (CREDIT frames) as its reader takes them. A slow
 * reader therefore slows the writer down instead of filling either side's memory, and one busy
 * stream never holds up the link's own messages (those are sent ahead of stream data).
 *
 * Node streams on both ends: `OutgoingStream` is a Writable (pipe an image into it),
 * `IncomingStream` a Readable.
 */
import { Readable, Writable } from 'node:stream';
import { VosError } from '../../api/errors.js';
import { MAX_DATA_BYTES } from '../../base/link-frame.js';

/** What each side may send on a new stream before the first CREDIT. */
export const INITIAL_WINDOW = 1024 * 1024;

/** What a stream needs from its link. */
export interface StreamCarrier {
  /** Queues a DATA frame behind the link's urgent frames; calls `sent` once the socket took it. */
  sendData(stream: number, data: Buffer, sent: () => void): void;
  sendCredit(stream: number, bytes: number): void;
  sendEnd(stream: number): void;
  sendReset(stream: number, reason: string): void;
  forget(stream: number): void;
}

/** The writing end. Chunks go out without a copy: do not change a buffer after writing it. */
export class OutgoingStream extends Writable {
  private credit = INITIAL_WINDOW;
  private waiting: (() => void) | null = null;
  private ended = false;

  constructor(
    readonly id: number,
    readonly meta: unknown,
    private readonly link: StreamCarrier,
  ) {
    super({ highWaterMark: MAX_DATA_BYTES });
  }

  /** The receiver took some bytes: it accepts this many more. */
  grant(bytes: number): void {
    this.credit += bytes;
    const w = this.waiting;
    this.waiting = null;
    w?.();
  }

  /** The receiver reset the stream (it gave up, or the link went away). */
  abort(reason: string): void {
    this.ended = true;
    this.link.forget(this.id);
    this.destroy(new VosError('connection_closed', reason));
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    void this.send(chunk).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.ended) {
      this.ended = true;
      this.link.sendEnd(this.id);
      this.link.forget(this.id);
    }
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.ended) {
      this.ended = true;
      this.link.sendReset(this.id, error?.message ?? 'the sender closed the stream');
      this.link.forget(this.id);
    }
    const w = this.waiting;
    this.waiting = null;
    w?.();
    callback(error);
  }

  private async send(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.destroyed) throw new VosError('connection_closed', 'the stream was closed');
      if (this.credit === 0) {
        await new Promise<void>((resolve) => (this.waiting = resolve));
        continue;
      }
      const n = Math.min(chunk.length - offset, this.credit, MAX_DATA_BYTES);
      this.credit -= n;
      const piece = chunk.subarray(offset, offset + n);
      offset += n;
      await new Promise<void>((resolve) => this.link.sendData(this.id, piece, resolve));
    }
  }
}

export class IncomingStream extends Readable {
  /** Bytes the sender may still send before it needs more credit. */
  private window = INITIAL_WINDOW;
  /** Bytes taken into our buffer that have not been credited back yet. */
  private owed = 0;
  private finished = false;

  constructor(
    readonly id: number,
    readonly meta: unknown,
    private readonly link: StreamCarrier,
  ) {
    super({ highWaterMark: INITIAL_WINDOW });
  }

  /** DATA arrived. Returns false if the sender broke flow control (the link is then closed). */
  receive(data: Buffer): boolean {
    if (this.finished) return true; // we reset it; frames in flight still arrive
    if (data.length > this.window) return false;
    this.window -= data.length;
    this.owed += data.length;
    if (this.push(data)) this.settle();
    return true;
  }

  end(): void {
    if (this.finished) return;
    this.finished = true;
    this.link.forget(this.id);
    this.push(null);
  }

  /** The sender reset the stream, or the link went away. */
  abort(reason: string): void {
    if (this.finished) return;
    this.finished = true;
    this.link.forget(this.id);
    this.destroy(new VosError('connection_closed', reason));
  }

  /** Not taken here: the sender hears `reason` (as a reset of the stream); nothing fails here. */
  refuse(reason: string): void {
    this.on('error', () => {});
    this.destroy(new Error(reason));
  }

  override _read(): void {
    this.settle();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.finished) {
      this.finished = true;
      this.link.sendReset(this.id, error?.message ?? 'the receiver closed the stream');
      this.link.forget(this.id);
    }
    callback(error);
  }

  /** Credits back what the reader has made room for, in batches of a quarter window. */
  private settle(): void {
    if (this.finished || this.owed < INITIAL_WINDOW / 4) return;
    const bytes = this.owed;
    this.owed = 0;
    this.window += bytes;
    this.link.sendCredit(this.id, bytes);
  }
}
