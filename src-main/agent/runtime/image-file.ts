/**
 * The agent's part of an image file (format: docs/image-format.md). The agent writes the first
 * record (HEADER), hands the file to the pod, which appends the pod's records, then adds the
 * SESSION record (metadata and the screen) and the TRAILER. On restore it reads SESSION back.
 */
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { machine, release, hostname } from 'node:os';
import { VosError } from '../../api/errors.js';
import type { SessionShape } from '../../api/protocol.js';
import { crc32c } from '../../base/crc32c.js';

export const RECORD = { HEADER: 1, SESSION: 2, TRAILER: 15 } as const;
const RECORD_MAGIC = 0x43455256; // "VREC"
const HEADER_BYTES = 24;
const IMAGE_MAGIC = 'vOS image';
const IMAGE_VERSION = 1;
const MAX_SESSION_RECORD = 64 * 1024 * 1024;

/** Where an image stands: what a writer continuing it must carry on from. */
export interface ImageProgress {
  records: number;
  bytes: number;
  /** CRC32C over the payload CRCs of all records so far. */
  chain: number;
}

export interface SessionRecord extends SessionShape {
  version: 1;
  /** The screen and scrollback (xterm serialize format) at the checkpoint. */
  snapshot: string;
  startedAt: number;
  checkpointedAt: number;
  agent: string;
  hostname: string;
}

function encodeRecord(type: number, payload: Buffer): { bytes: Buffer; crc: number } {
  const head = Buffer.alloc(HEADER_BYTES);
  head.writeUInt32LE(RECORD_MAGIC, 0);
  head.writeUInt32LE(type, 4);
  head.writeBigUInt64LE(BigInt(payload.length), 8);
  head.writeUInt32LE(0, 16);
  head.writeUInt32LE(crc32c(head.subarray(0, 20)), 20);
  const crc = crc32c(payload);
  const tail = Buffer.alloc(4);
  tail.writeUInt32LE(crc, 0);
  return { bytes: Buffer.concat([head, payload, tail]), crc };
}

function lengthPrefixed(text: string): Buffer {
  const body = Buffer.from(text, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(body.length, 0);
  return Buffer.concat([len, body]);
}

function headerPayload(producer: string): Buffer {
  const fixed = Buffer.alloc(16 + 4 + 4 + 8);
  fixed.write(IMAGE_MAGIC, 0, 'latin1');
  fixed.writeUInt32LE(IMAGE_VERSION, 16);
  fixed.writeUInt32LE(4096, 20);
  fixed.writeBigUInt64LE(BigInt(Date.now()), 24);
  return Buffer.concat([fixed, lengthPrefixed(producer), lengthPrefixed(release()), lengthPrefixed(machine())]);
}

/** A record's header: its type and payload length, or null if these bytes are not one. */
function recordHeader(head: Buffer): { type: number; length: number } | null {
  if (head.readUInt32LE(0) !== RECORD_MAGIC) return null;
  return { type: head.readUInt32LE(4), length: Number(head.readBigUInt64LE(8)) };
}

/** A SESSION record from its payload followed by the payload's CRC; null if damaged. */
function sessionFromPayload(payloadAndCrc: Buffer, length: number): SessionRecord | null {
  const payload = payloadAndCrc.subarray(0, length);
  if (crc32c(payload) !== payloadAndCrc.readUInt32LE(length)) return null;
  try {
    return JSON.parse(payload.toString('utf8')) as SessionRecord;
  } catch {
    return null;
  }
}

/** Appends records to an image (a file, or a stream to another machine), keeping count for the trailer. */
export class ImageAppender {
  constructor(
    private readonly write: (bytes: Buffer) => void,
    private progress: ImageProgress = { records: 0, bytes: 0, chain: 0 },
  ) {}

  /** Appends to an open file descriptor. */
  static toFd(fd: number): ImageAppender {
    return new ImageAppender((bytes) => {
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    });
  }

  get state(): ImageProgress {
    return { ...this.progress };
  }

  /** Continues after someone else (the pod) appended records. */
  continueFrom(progress: ImageProgress): void {
    this.progress = { ...progress };
  }

  append(type: number, payload: Buffer): void {
    const { bytes, crc } = encodeRecord(type, payload);
    this.write(bytes);
    const crcBytes = Buffer.alloc(4);
    crcBytes.writeUInt32LE(crc, 0);
    this.progress = {
      records: this.progress.records + 1,
      bytes: this.progress.bytes + bytes.length,
      chain: crc32c(crcBytes, this.progress.chain),
    };
  }

  header(producer: string): void {
    this.append(RECORD.HEADER, headerPayload(producer));
  }

  session(record: SessionRecord): void {
    this.append(RECORD.SESSION, Buffer.from(JSON.stringify(record), 'utf8'));
  }

  trailer(): void {
    const t = Buffer.alloc(16);
    t.writeUInt32LE(this.progress.records, 0);
    t.writeUInt32LE(this.progress.chain, 4);
    t.writeBigUInt64LE(BigInt(this.progress.bytes), 8);
    this.append(RECORD.TRAILER, t);
  }
}

/** The SESSION record of a session whose screen `shot` was taken while it was frozen. */
export function sessionRecordOf(
  info: { name: string; command: string; args: string[]; cwd: string; startedAt: number },
  shot: { snapshot: string; cols: number; rows: number },
  agentName: string,
): SessionRecord {
  return {
    version: 1,
    name: info.name,
    command: info.command,
    args: info.args,
    cwd: info.cwd,
    cols: shot.cols,
    rows: shot.rows,
    snapshot: shot.snapshot,
    startedAt: info.startedAt,
    checkpointedAt: Date.now(),
    agent: agentName,
    hostname: hostname(),
  };
}

/**
 * Reads the SESSION record of an image (the image must have been verified: this checks only
 * this record's own CRC). Fails with `bad_image` when there is none.
 */
export function readSessionRecord(path: string): SessionRecord {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new VosError('bad_image', `cannot open ${path}: ${(err as Error).message}`);
  }
  try {
    const head = Buffer.alloc(HEADER_BYTES);
    let offset = 0;
    for (;;) {
      if (readSync(fd, head, 0, HEADER_BYTES, offset) < HEADER_BYTES) break;
      const header = recordHeader(head);
      if (!header) break;
      const { type, length } = header;
      if (type === RECORD.SESSION) {
        if (length > MAX_SESSION_RECORD) break;
        const payload = Buffer.alloc(length + 4);
        readSync(fd, payload, 0, length + 4, offset + HEADER_BYTES);
        const record = sessionFromPayload(payload, length);
        if (!record) break;
        return record;
      }
      offset += HEADER_BYTES + length + 4;
    }
  } finally {
    closeSync(fd);
  }
  throw new VosError('bad_image', `${path} has no session record: it was not made by vos checkpoint`);
}

/**
 * Finds the SESSION record in an image going by as a stream (a migration), without holding the
 * rest: feed it every chunk in order; `found` fires once with the record, if its CRC is right.
 * It judges nothing else: the restorer checks the whole image.
 */
export class SessionRecordWatcher {
  private head = Buffer.alloc(0);
  /** Bytes of the current record's payload + CRC still to pass. */
  private remaining = 0;
  private capture: Buffer[] | null = null;
  private captureLength = 0;
  private done = false;

  constructor(private readonly found: (record: SessionRecord) => void) {}

  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length && !this.done) {
      if (this.remaining === 0) {
        const need = HEADER_BYTES - this.head.length;
        this.head = Buffer.concat([this.head, chunk.subarray(off, off + need)]);
        off += Math.min(need, chunk.length - off);
        if (this.head.length < HEADER_BYTES) return;
        const header = recordHeader(this.head);
        if (!header) {
          this.done = true; // not an image we understand; the restorer will say why
          return;
        }
        const { type, length } = header;
        this.head = Buffer.alloc(0);
        this.remaining = length + 4;
        this.capture = type === RECORD.SESSION && length <= MAX_SESSION_RECORD ? [] : null;
        this.captureLength = length;
        continue;
      }
      const take = Math.min(this.remaining, chunk.length - off);
      if (this.capture) this.capture.push(chunk.subarray(off, off + take));
      this.remaining -= take;
      off += take;
      if (this.remaining === 0 && this.capture) {
        const record = sessionFromPayload(Buffer.concat(this.capture), this.captureLength);
        this.capture = null;
        if (record) this.found(record); // else the restorer refuses the image
        this.done = true;
      }
    }
  }
}
