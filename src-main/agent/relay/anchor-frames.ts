/**
 * The frames between the agent and a move's anchor (the checkpoint helper that kept the
 * session's connections to outside its pod: runtime/init/anchor.h), both ways, big-endian:
 * `u8 type, u32 connection (the socket's object id in the image), u32 length, payload`.
 * Flow control is per connection (FULL/ROOM from the anchor, PAUSE/RESUME to it), so one
 * connection that is not read holds up no other.
 */
export const ANCHOR_DATA = 1;
export const ANCHOR_EOF = 2;
export const ANCHOR_RESET = 3;
export const ANCHOR_CLOSED = 4;
/** From the anchor: the socket holds ANCHOR_CONN_FULL bytes we sent and it has not taken; send it no more. */
export const ANCHOR_FULL = 5;
/** From the anchor: that socket has room again. */
export const ANCHOR_ROOM = 6;
/** To the anchor: do not read that socket (its channel holds its limit). */
export const ANCHOR_PAUSE = 7;
/** To the anchor: read it again. */
export const ANCHOR_RESUME = 8;
/** The most a DATA frame carries (the anchor's own bound). */
export const ANCHOR_MAX_DATA = 64 * 1024;
const HEAD = 9;

export interface AnchorFrame {
  type: number;
  conn: number;
  payload: Buffer;
}

export function encodeAnchorFrame(type: number, conn: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.allocUnsafe(HEAD);
  head.writeUInt8(type, 0);
  head.writeUInt32BE(conn, 1);
  head.writeUInt32BE(payload.length, 5);
  return payload.length ? Buffer.concat([head, payload]) : head;
}

/** DATA frames for `data`, cut to the anchor's bound. */
export function encodeAnchorData(conn: number, data: Buffer): Buffer[] {
  const frames: Buffer[] = [];
  for (let at = 0; at < data.length; at += ANCHOR_MAX_DATA) frames.push(encodeAnchorFrame(ANCHOR_DATA, conn, data.subarray(at, at + ANCHOR_MAX_DATA)));
  return frames;
}

/** Frames from a byte stream, however it was cut. A frame longer than the bound is an error. */
export class AnchorFrameDecoder {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): AnchorFrame[] {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    const frames: AnchorFrame[] = [];
    let at = 0;
    while (this.pending.length - at >= HEAD) {
      const len = this.pending.readUInt32BE(at + 5);
      if (len > ANCHOR_MAX_DATA) throw new Error(`the anchor sent a frame of ${len} bytes`);
      if (this.pending.length - at < HEAD + len) break;
      frames.push({
        type: this.pending.readUInt8(at),
        conn: this.pending.readUInt32BE(at + 1),
        payload: Buffer.from(this.pending.subarray(at + HEAD, at + HEAD + len)),
      });
      at += HEAD + len;
    }
    this.pending = this.pending.subarray(at);
    return frames;
  }
}
