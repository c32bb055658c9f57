/**
 * Reading an image's record framing (docs/image-format.md, "Record framing"). The agent only
 * reads images: vos-init writes every record of them. The framing's constants live here and
 * nowhere else on the TypeScript side; test/runtime/image-format.test.ts holds them to the C
 * header (include/vos-image.h), to the doc, and to what `vos-init verify --list` reads.
 */
import { readSync } from 'node:fs';
import { crc32c } from '../../base/crc32c.js';

/** The record types, by their names in the doc. */
export const RECORD = {
  HEADER: 1,
  SESSION: 2,
  POD: 3,
  OBJECTS: 4,
  PROCESS: 5,
  PAGES: 6,
  OBJDATA: 7,
  FILE: 8,
  FILEDATA: 9,
  PRECOPY: 10,
  CHAIN: 11,
  FILEREF: 12,
  LOCKS: 13,
  SYSV_IPC: 14,
  TRAILER: 15,
} as const;

/** "VREC", the first 4 bytes of every record. */
export const RECORD_MAGIC = 0x43455256;
/** magic, type, payload length (u64), flags, CRC32C of the 20 bytes before it. */
export const RECORD_HEADER_BYTES = 24;
/** The payload's CRC32C, after it. */
export const RECORD_CRC_BYTES = 4;
/** No record's payload is larger (VOS_MAX_RECORD). */
export const MAX_RECORD = 64 * 1024 * 1024;

export interface RecordHead {
  type: number;
  /** Of the payload. */
  length: number;
}

export interface RecordAt extends RecordHead {
  /** Of the record (its header) in the image. */
  offset: number;
}

/** A record's header from its 24 bytes, or null if they are not a valid one. */
export function parseRecordHead(head: Buffer): RecordHead | null {
  if (head.length < RECORD_HEADER_BYTES || head.readUInt32LE(0) !== RECORD_MAGIC) return null;
  if (crc32c(head.subarray(0, 20)) !== head.readUInt32LE(20)) return null;
  const length = head.readBigUInt64LE(8);
  if (length > BigInt(MAX_RECORD)) return null;
  return { type: head.readUInt32LE(4), length: Number(length) };
}

/** A payload from the payload followed by its CRC; null if the CRC does not match. */
export function checkedPayload(payloadAndCrc: Buffer, length: number): Buffer | null {
  const payload = payloadAndCrc.subarray(0, length);
  return crc32c(payload) === payloadAndCrc.readUInt32LE(length) ? payload : null;
}

/** The records of an image file, front to back, as far as their headers are valid. */
export function* recordsOf(fd: number): Generator<RecordAt> {
  const head = Buffer.alloc(RECORD_HEADER_BYTES);
  for (let offset = 0; ; ) {
    if (readSync(fd, head, 0, RECORD_HEADER_BYTES, offset) < RECORD_HEADER_BYTES) return;
    const parsed = parseRecordHead(head);
    if (!parsed) return;
    yield { ...parsed, offset };
    offset += RECORD_HEADER_BYTES + parsed.length + RECORD_CRC_BYTES;
  }
}

/** A record's payload, its CRC checked; null if it is cut short or damaged. */
export function readPayload(fd: number, record: RecordAt): Buffer | null {
  const bytes = Buffer.alloc(record.length + RECORD_CRC_BYTES);
  if (readSync(fd, bytes, 0, bytes.length, record.offset + RECORD_HEADER_BYTES) < bytes.length) return null;
  return checkedPayload(bytes, record.length);
}

/**
 * Splits an image going by as a stream into records without holding it: feed every chunk in
 * order; `found` gets the payload (CRC checked, else null) of each record of the `wanted` type.
 * It stops at a header that is not valid (the restorer, which checks everything, says why).
 */
export class RecordStream {
  private head = Buffer.alloc(0);
  /** Bytes of the current record's payload + CRC still to pass. */
  private remaining = 0;
  private capture: Buffer[] | null = null;
  private captureLength = 0;
  private stopped = false;

  constructor(
    private readonly wanted: number,
    private readonly found: (payload: Buffer | null) => void,
  ) {}

  /** Stops looking (the caller has what it wanted). */
  stop(): void {
    this.stopped = true;
  }

  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length && !this.stopped) {
      if (this.remaining === 0) {
        const need = RECORD_HEADER_BYTES - this.head.length;
        this.head = Buffer.concat([this.head, chunk.subarray(off, off + need)]);
        off += Math.min(need, chunk.length - off);
        if (this.head.length < RECORD_HEADER_BYTES) return;
        const parsed = parseRecordHead(this.head);
        this.head = Buffer.alloc(0);
        if (!parsed) {
          this.stopped = true;
          return;
        }
        this.remaining = parsed.length + RECORD_CRC_BYTES;
        this.capture = parsed.type === this.wanted ? [] : null;
        this.captureLength = parsed.length;
        continue;
      }
      const take = Math.min(this.remaining, chunk.length - off);
      if (this.capture) this.capture.push(chunk.subarray(off, off + take));
      this.remaining -= take;
      off += take;
      if (this.remaining === 0 && this.capture) {
        const payload = checkedPayload(Buffer.concat(this.capture), this.captureLength);
        this.capture = null;
        this.found(payload);
      }
    }
  }
}
