/**
 * Binary frames of the link protocol between two agents. One TLS connection carries the link's
 * own messages (stream 0) and any number of multiplexed byte streams (stream > 0):
 *
 *   offset 0       1                 5                   9
 *   +--------+-----------------+-----------------+------------------+
 *   | u8     | u32 big-endian  | u32 big-endian  | N bytes          |
 *   | kind   | stream id       | payload length N| payload          |
 *   +--------+-----------------+-----------------+------------------+
 *
 *   kind        stream  payload
 *   1  HELLO    0       UTF-8 JSON, at most maxJsonBytes
 *   2  CONTROL  0       UTF-8 JSON (pairing messages and the like)
 *   3  RPC      0       UTF-8 JSON (API requests, responses, events)
 *   4  OPEN     > 0     UTF-8 JSON (what the stream carries)
 *   5  DATA     > 0     raw bytes, 1..MAX_DATA_BYTES
 *   6  CREDIT   > 0     exactly 4 bytes: u32 > 0, more bytes the receiver will accept
 *   7  END      > 0     empty
 *   8  RESET    > 0     UTF-8 JSON ({ reason: string })
 *   9  PING     0       exactly 8 bytes (nonce)
 *   10 PONG     0       exactly 8 bytes (the nonce of the ping)
 *
 * The decoder judges kind, stream and length from the 9 header bytes alone, before it buffers any
 * of the payload, so a hostile length can make it neither allocate nor wait. Anything wrong with a
 * frame is a LinkFrameError; the link that sent it is closed, nobody else is affected.
 */
import { isUtf8 } from 'node:buffer';
import { VosError } from '../api/errors.js';

export const LINK_FRAME_HEADER_BYTES = 9;
export const MAX_DATA_BYTES = 256 * 1024;

/** The largest value of a u32 field: a stream id, a payload length, a credit. */
const MAX_U32 = 0xffffffff;
const CREDIT_BYTES = 4;
const NONCE_BYTES = 8;

export const FrameKind = {
  HELLO: 1,
  CONTROL: 2,
  RPC: 3,
  OPEN: 4,
  DATA: 5,
  CREDIT: 6,
  END: 7,
  RESET: 8,
  PING: 9,
  PONG: 10,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

export type LinkFrame =
  | { kind: 'hello' | 'control' | 'rpc'; stream: 0; json: unknown }
  | { kind: 'open'; stream: number; json: unknown }
  | { kind: 'reset'; stream: number; json: unknown }
  | { kind: 'data'; stream: number; data: Buffer }
  | { kind: 'credit'; stream: number; bytes: number }
  | { kind: 'end'; stream: number }
  | { kind: 'ping' | 'pong'; stream: 0; nonce: Buffer };

export type LinkFrameKind = LinkFrame['kind'];

export interface LinkFrameLimits {
  /** The largest JSON payload accepted (HELLO, CONTROL, RPC, OPEN, RESET). */
  maxJsonBytes: number;
}

export class LinkFrameError extends VosError {
  constructor(code: 'bad_frame' | 'frame_too_large', message: string) {
    super(code, message);
  }
}

const CODE_OF: Record<LinkFrameKind, FrameKind> = {
  hello: FrameKind.HELLO,
  control: FrameKind.CONTROL,
  rpc: FrameKind.RPC,
  open: FrameKind.OPEN,
  data: FrameKind.DATA,
  credit: FrameKind.CREDIT,
  end: FrameKind.END,
  reset: FrameKind.RESET,
  ping: FrameKind.PING,
  pong: FrameKind.PONG,
};

const NAME_OF = new Map<number, LinkFrameKind>(
  (Object.entries(CODE_OF) as [LinkFrameKind, FrameKind][]).map(([name, code]) => [code, name]),
);

/** Kinds that belong to the link itself (stream 0); all others belong to a stream (> 0). */
function isLinkKind(kind: LinkFrameKind): boolean {
  return kind === 'hello' || kind === 'control' || kind === 'rpc' || kind === 'ping' || kind === 'pong';
}

function isJsonKind(kind: LinkFrameKind): boolean {
  return kind === 'hello' || kind === 'control' || kind === 'rpc' || kind === 'open' || kind === 'reset';
}

function frameName(kind: LinkFrameKind, stream: number): string {
  return `${kind.toUpperCase()} frame on stream ${stream}`;
}

function badFrame(kind: LinkFrameKind, stream: number, problem: string): LinkFrameError {
  return new LinkFrameError('bad_frame', `${frameName(kind, stream)}: ${problem}`);
}

/** Why `stream` is wrong for `kind`, or null if it is right. */
function streamProblem(kind: LinkFrameKind, stream: number): string | null {
  if (isLinkKind(kind)) return stream === 0 ? null : 'must be on stream 0 (the link itself)';
  return stream >= 1 && stream <= MAX_U32 && Number.isInteger(stream) ? null : 'needs a stream id from 1 to 4294967295';
}

/** Checks a payload length against the rules of its kind; the header alone decides. */
function checkLength(kind: LinkFrameKind, stream: number, length: number, limits: LinkFrameLimits): void {
  if (isJsonKind(kind)) {
    if (length > limits.maxJsonBytes) {
      throw new LinkFrameError(
        'frame_too_large',
        `${frameName(kind, stream)}: JSON payload of ${length} bytes exceeds the limit of ${limits.maxJsonBytes}`,
      );
    }
    if (length === 0) throw badFrame(kind, stream, 'JSON payload is empty');
    return;
  }
  switch (kind) {
    case 'data':
      if (length > MAX_DATA_BYTES) {
        throw new LinkFrameError(
          'frame_too_large',
          `${frameName(kind, stream)}: payload of ${length} bytes exceeds the limit of ${MAX_DATA_BYTES}`,
        );
      }
      if (length === 0) throw badFrame(kind, stream, 'payload is empty (needs 1 to 262144 bytes)');
      return;
    case 'credit':
      if (length !== CREDIT_BYTES) throw badFrame(kind, stream, `payload is ${length} bytes, needs exactly ${CREDIT_BYTES}`);
      return;
    case 'end':
      if (length !== 0) throw badFrame(kind, stream, `payload is ${length} bytes, needs none`);
      return;
    case 'ping':
    case 'pong':
      if (length !== NONCE_BYTES) throw badFrame(kind, stream, `payload is ${length} bytes, needs exactly ${NONCE_BYTES}`);
      return;
  }
}

function checkLimits(limits: LinkFrameLimits): LinkFrameLimits {
  const max = limits.maxJsonBytes;
  if (!Number.isInteger(max) || max < 1 || max > MAX_U32) {
    throw new RangeError(`maxJsonBytes must be an integer from 1 to ${MAX_U32}, not ${max}`);
  }
  return { maxJsonBytes: max };
}

// ---------------------------------------------------------------------------------------------
// Encoding

function encodeJson(kind: LinkFrameKind, stream: number, value: unknown): Buffer {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw badFrame(kind, stream, `JSON payload cannot be serialized: ${(err as Error).message}`);
  }
  if (text === undefined) throw badFrame(kind, stream, `a ${typeof value} is not a JSON value`);
  return Buffer.from(text, 'utf8');
}

function payloadOf(frame: LinkFrame): Buffer {
  switch (frame.kind) {
    case 'hello':
    case 'control':
    case 'rpc':
    case 'open':
    case 'reset':
      return encodeJson(frame.kind, frame.stream, frame.json);
    case 'data':
      if (!Buffer.isBuffer(frame.data)) throw badFrame(frame.kind, frame.stream, 'data is not a Buffer');
      return frame.data;
    case 'credit': {
      if (!Number.isInteger(frame.bytes) || frame.bytes < 1 || frame.bytes > MAX_U32) {
        throw badFrame(frame.kind, frame.stream, `credit of ${frame.bytes} is not an integer from 1 to ${MAX_U32}`);
      }
      const payload = Buffer.allocUnsafe(CREDIT_BYTES);
      payload.writeUInt32BE(frame.bytes, 0);
      return payload;
    }
    case 'end':
      return Buffer.alloc(0);
    case 'ping':
    case 'pong':
      if (!Buffer.isBuffer(frame.nonce)) throw badFrame(frame.kind, frame.stream, 'nonce is not a Buffer');
      return frame.nonce;
  }
}

/**
 * The bytes of one frame. Throws a LinkFrameError for a frame the decoder would refuse: unknown
 * kind, wrong stream, a payload of the wrong size, a value JSON cannot represent. JSON payloads are
 * limited only by the u32 length field here; the receiver's maxJsonBytes is its own business.
 */
export function encodeLinkFrame(frame: LinkFrame): Buffer {
  return Buffer.concat(encodeLinkFrameParts(frame));
}

/**
 * The same frame as its header and its payload, the payload not copied: for writing stream data
 * (the bulk of a link's bytes) with one copy fewer.
 */
export function encodeLinkFrameParts(frame: LinkFrame): [Buffer, Buffer] {
  if (!Object.hasOwn(CODE_OF, frame.kind)) {
    throw new LinkFrameError('bad_frame', `unknown frame kind ${JSON.stringify(frame.kind)}`);
  }
  const code = CODE_OF[frame.kind];
  const problem = streamProblem(frame.kind, frame.stream);
  if (problem !== null) throw badFrame(frame.kind, frame.stream, problem);
  const payload = payloadOf(frame);
  checkLength(frame.kind, frame.stream, payload.length, { maxJsonBytes: MAX_U32 });
  const header = Buffer.allocUnsafe(LINK_FRAME_HEADER_BYTES);
  header.writeUInt8(code, 0);
  header.writeUInt32BE(frame.stream, 1);
  header.writeUInt32BE(payload.length, 5);
  return [header, payload];
}

// ---------------------------------------------------------------------------------------------
// Decoding

interface Header {
  kind: LinkFrameKind;
  stream: number;
  length: number;
}

function parseJson(header: Header, payload: Buffer): unknown {
  if (!isUtf8(payload)) throw badFrame(header.kind, header.stream, 'JSON payload is not valid UTF-8');
  try {
    return JSON.parse(payload.toString('utf8')) as unknown;
  } catch (err) {
    throw badFrame(header.kind, header.stream, `payload is not valid JSON (${(err as Error).message})`);
  }
}

function frameOf(header: Header, payload: Buffer): LinkFrame {
  const { kind, stream } = header;
  switch (kind) {
    case 'hello':
    case 'control':
    case 'rpc':
      return { kind, stream: 0, json: parseJson(header, payload) };
    case 'open':
    case 'reset':
      return { kind, stream, json: parseJson(header, payload) };
    case 'data':
      return { kind, stream, data: payload };
    case 'credit': {
      const bytes = payload.readUInt32BE(0);
      if (bytes === 0) throw badFrame(kind, stream, 'credit of 0 bytes (must be at least 1)');
      return { kind, stream, bytes };
    }
    case 'end':
      return { kind, stream };
    case 'ping':
    case 'pong':
      return { kind, stream: 0, nonce: payload };
  }
}

/**
 * Turns the bytes of a link into frames, in any chunking. The DATA and nonce buffers it returns
 * may share memory with the chunks pushed in: a caller must not reuse a chunk after pushing it.
 */
export class LinkFrameDecoder {
  private limits: LinkFrameLimits;
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** The header of the frame whose payload is being waited for. */
  private header: Header | null = null;
  /** Why the decoder stopped, once it has. */
  private failure: string | null = null;

  constructor(limits: LinkFrameLimits) {
    this.limits = checkLimits(limits);
  }

  /** Changes the limits from the next frame header on (e.g. 64 KiB before a peer is trusted, 64 MiB after). */
  setLimits(limits: LinkFrameLimits): void {
    this.limits = checkLimits(limits);
  }

  /** Bytes received but not yet part of a complete frame. */
  get pendingBytes(): number {
    return this.buffered + (this.header === null ? 0 : LINK_FRAME_HEADER_BYTES);
  }

  /**
   * Feeds bytes in; returns every frame they complete. Throws a LinkFrameError at the first bad
   * frame (the frames before it in the same chunk are dropped with it) and refuses all input after
   * that: the stream position is lost and the link must be closed.
   */
  push(chunk: Buffer): LinkFrame[] {
    if (this.failure !== null) {
      throw new LinkFrameError('bad_frame', `the link already had a bad frame (${this.failure})`);
    }
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const out: LinkFrame[] = [];
    try {
      for (;;) {
        if (this.header === null) {
          if (this.buffered < LINK_FRAME_HEADER_BYTES) break;
          this.header = this.readHeader(this.take(LINK_FRAME_HEADER_BYTES));
        }
        if (this.buffered < this.header.length) break;
        const header = this.header;
        this.header = null;
        out.push(frameOf(header, this.take(header.length)));
      }
    } catch (err) {
      this.failure = (err as Error).message;
      this.chunks = [];
      this.buffered = 0;
      this.header = null;
      throw err;
    }
    return out;
  }

  private readHeader(bytes: Buffer): Header {
    const code = bytes.readUInt8(0);
    const stream = bytes.readUInt32BE(1);
    const length = bytes.readUInt32BE(5);
    const kind = NAME_OF.get(code);
    if (kind === undefined) {
      throw new LinkFrameError('bad_frame', `unknown frame kind ${code} (stream ${stream}, payload of ${length} bytes)`);
    }
    const problem = streamProblem(kind, stream);
    if (problem !== null) throw badFrame(kind, stream, problem);
    checkLength(kind, stream, length, this.limits);
    return { kind, stream, length };
  }

  /**
   * Removes the next n buffered bytes (n <= buffered). Within one chunk they are a view of it;
   * across chunks they are copied once into a buffer of exactly n bytes, so a large frame arriving
   * in many pieces costs linear time.
   */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (first === undefined || n === 0) return Buffer.alloc(0);
    this.buffered -= n;
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    let used = 0;
    while (filled < n) {
      const chunk = this.chunks[used]!;
      const count = Math.min(chunk.length, n - filled);
      chunk.copy(out, filled, 0, count);
      filled += count;
      if (count === chunk.length) used++;
      else this.chunks[used] = chunk.subarray(count);
    }
    this.chunks.splice(0, used);
    return out;
  }
}
