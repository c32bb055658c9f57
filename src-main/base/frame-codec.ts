/**
 * Length-prefixed JSON frames for stream transports (the local Unix socket):
 *
 *   +----------------------+------------------------------+
 *   | u32 big-endian: N    | N bytes: one UTF-8 JSON value|
 *   +----------------------+------------------------------+
 *
 * The decoder enforces a maximum N before it buffers anything, so a hostile length cannot make
 * the reader allocate. Anything wrong with a frame is a FrameError; the connection that sent it
 * is closed, nobody else is affected.
 */
import { VosError } from '../api/errors.js';

export const FRAME_HEADER_BYTES = 4;

export class FrameError extends VosError {}

export function encodeFrame(value: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(value), 'utf8');
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed = false;

  constructor(private readonly maxFrameBytes: number) {}

  /** Bytes received but not yet part of a complete frame. */
  get pendingBytes(): number {
    return this.buffered;
  }

  /**
   * Feeds bytes in; returns the values of every frame completed by them. After a FrameError the
   * decoder refuses further input (the stream position is lost).
   */
  push(chunk: Buffer): unknown[] {
    if (this.failed) throw new FrameError('bad_frame', 'the stream already had a bad frame');
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: unknown[] = [];
    while (this.buffered >= FRAME_HEADER_BYTES) {
      const head = this.peek(FRAME_HEADER_BYTES);
      const length = head.readUInt32BE(0);
      if (length > this.maxFrameBytes) {
        this.failed = true;
        throw new FrameError('frame_too_large', `frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes}`);
      }
      if (this.buffered < FRAME_HEADER_BYTES + length) break;
      const frame = this.take(FRAME_HEADER_BYTES + length).subarray(FRAME_HEADER_BYTES);
      try {
        out.push(JSON.parse(frame.toString('utf8')));
      } catch {
        this.failed = true;
        throw new FrameError('bad_frame', 'frame is not valid JSON');
      }
    }
    return out;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  private take(n: number): Buffer {
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    const first = this.chunks[0]!;
    const taken = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return taken;
  }
}
