/**
 * Damaged images that pass the checksums: split a real image into its records (the framing as
 * src-main/agent/runtime/image-records.ts reads it), change, add, drop or move records, and
 * frame them again with fresh CRCs and a TRAILER whose counts and chain match. What is left for
 * a reader to catch is only the damage itself.
 */
import { crc32c } from '../../src-main/base/crc32c.js';
import { RECORD, RECORD_CRC_BYTES, RECORD_HEADER_BYTES, RECORD_MAGIC, parseRecordHead } from '../../src-main/agent/runtime/image-records.js';

export interface ImageRecord {
  type: number;
  payload: Buffer;
}

/** The records of an image, TRAILER included, front to back. Throws if the framing is broken. */
export function splitImage(image: Buffer): ImageRecord[] {
  const out: ImageRecord[] = [];
  for (let at = 0; at < image.length; ) {
    const head = parseRecordHead(image.subarray(at, at + RECORD_HEADER_BYTES));
    if (!head) throw new Error(`no valid record header at byte ${at}`);
    const start = at + RECORD_HEADER_BYTES;
    out.push({ type: head.type, payload: Buffer.from(image.subarray(start, start + head.length)) });
    at = start + head.length + RECORD_CRC_BYTES;
  }
  return out;
}

function frame(type: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(RECORD_HEADER_BYTES);
  head.writeUInt32LE(RECORD_MAGIC, 0);
  head.writeUInt32LE(type, 4);
  head.writeBigUInt64LE(BigInt(payload.length), 8);
  head.writeUInt32LE(0, 16);
  head.writeUInt32LE(crc32c(head.subarray(0, 20)), 20);
  const crc = Buffer.alloc(RECORD_CRC_BYTES);
  crc.writeUInt32LE(crc32c(payload), 0);
  return Buffer.concat([head, payload, crc]);
}

/**
 * An image of these records with every CRC right: a TRAILER among them is dropped and a new one
 * ends the image (records and bytes before it, the chain of their payload CRCs).
 */
export function joinImage(records: ImageRecord[]): Buffer {
  const parts: Buffer[] = [];
  let bytes = 0;
  let chain = 0;
  let count = 0;
  for (const r of records) {
    if (r.type === RECORD.TRAILER) continue;
    const framed = frame(r.type, r.payload);
    parts.push(framed);
    bytes += framed.length;
    count++;
    chain = crc32c(framed.subarray(framed.length - RECORD_CRC_BYTES), chain);
  }
  const trailer = Buffer.alloc(16);
  trailer.writeUInt32LE(count, 0);
  trailer.writeUInt32LE(chain, 4);
  trailer.writeBigUInt64LE(BigInt(bytes), 8);
  parts.push(frame(RECORD.TRAILER, trailer));
  return Buffer.concat(parts);
}

/** The place (from 1, as vos-init names records: "POD #3") of the n-th record of a type (from 0). */
export function recordIndex(records: ImageRecord[], type: number, nth = 0): number {
  let seen = 0;
  for (let i = 0; i < records.length; i++) {
    if (records[i]!.type === type && seen++ === nth) return i + 1;
  }
  throw new Error(`the image has no record ${nth} of type ${type}`);
}

/** A copy of the records with the payload of the n-th record of a type replaced. */
export function withPayload(records: ImageRecord[], type: number, payload: (old: Buffer) => Buffer, nth = 0): ImageRecord[] {
  const at = recordIndex(records, type, nth) - 1;
  return records.map((r, i) => (i === at ? { type: r.type, payload: payload(Buffer.from(r.payload)) } : r));
}

/** The record names vos-init uses in errors (docs/image-format.md). */
export const RECORD_NAMES: Record<number, string> = Object.fromEntries(Object.entries(RECORD).map(([name, n]) => [n, name]));
