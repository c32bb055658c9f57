/**
 * The words of a chain made straight. A session whose connection is kept on A moved to B (B
 * relays it), then on to C: B cuts itself out and C talks to A directly.
 *
 * 1. B, once the move to C is committed and C's streams are there (C said in them that it has a
 *    link to A, or is A), and every byte it sent A is acknowledged:
 *    - stops taking C's bytes (`upTaken`: how many it took), and has its helper write those
 *      into the socket it kept and shut it down for writing;
 *    - stops writing A's bytes into its own end and shuts that down for writing, so the helper
 *      reads what the program on B never read, to its end, and it goes to C first.
 * 2. When both ends have said their last byte, B sends A `MOVED {peer: C}` after the last of
 *    the program's bytes (`up`: how many) and C `HANDOFF {anchor, migration, object, down, up,
 *    upTaken}` after the last of A's (`down`: how many B took from A).
 * 3. C goes on with A in a new channel: A's bytes from `down`, its own from `upTaken` (those
 *    B had not passed on) numbered from `up`. A accepts C's streams for that connection only
 *    once B's MOVED named C (a stream that comes first waits a little).
 * Nothing is lost or doubled: every byte of each way is either before the cut (and went its way
 * through B) or after it (and is sent again by the side that kept it). If C is A itself, the
 * same streams run inside A (loopback-stream.ts).
 *
 * Payloads are JSON from another machine: checked here, field by field.
 */
import type { PeerRef } from '../../api/protocol.js';
import { cleanPeerText, PEER_NAME_MAX } from '../../base/peer-text.js';

export interface Handoff {
  /** The machine that keeps the real socket. */
  anchor: PeerRef;
  /** The anchor's move and the connection's object id there. */
  migration: string;
  object: number;
  /** Bytes from the anchor that the relaying machine took (and passed on). */
  down: number;
  /** Bytes the anchor has of the program's side. */
  up: number;
  /** Bytes of ours the relaying machine took (and passed on); ours after those go to the anchor. */
  upTaken: number;
}

const DEVICE_ID = /^[0-9a-f]{64}$/;
const MIGRATION_ID = /^[0-9a-f]{1,64}$/;

/** A byte count or id from a peer: a safe non-negative integer, or null. */
export function byteCount(v: unknown): number | null {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : null;
}

function json(payload: Buffer): Record<string, unknown> | null {
  if (payload.length > 4096) return null;
  try {
    const v: unknown = JSON.parse(payload.toString('utf8'));
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export function encodeHandoff(h: Handoff): Buffer {
  return Buffer.from(JSON.stringify(h));
}

/** A HANDOFF's payload, or null if any field is not what it must be. */
export function parseHandoff(payload: Buffer): Handoff | null {
  const v = json(payload);
  const anchor = v?.anchor as Record<string, unknown> | undefined;
  if (!v || typeof anchor !== 'object' || anchor === null) return null;
  const [down, up, upTaken, object] = [byteCount(v.down), byteCount(v.up), byteCount(v.upTaken), byteCount(v.object)];
  if (typeof anchor.id !== 'string' || !DEVICE_ID.test(anchor.id)) return null;
  if (typeof v.migration !== 'string' || !MIGRATION_ID.test(v.migration)) return null;
  if (down === null || up === null || upTaken === null || object === null || object > 0xffffffff) return null;
  return { anchor: { id: anchor.id, name: cleanPeerText(anchor.name, PEER_NAME_MAX) || anchor.id.slice(0, 8) }, migration: v.migration, object, down, up, upTaken };
}

export function encodeMoved(peerId: string): Buffer {
  return Buffer.from(JSON.stringify({ peer: peerId }));
}

/** A MOVED's peer id, or null. */
export function parseMoved(payload: Buffer): string | null {
  const peer = json(payload)?.peer;
  return typeof peer === 'string' && DEVICE_ID.test(peer) ? peer : null;
}

/** The `reach` of a relay stream's meta: device ids (at most 256), or none. */
export function parseReach(v: unknown): string[] {
  return Array.isArray(v) ? v.slice(0, 256).filter((x): x is string => typeof x === 'string' && DEVICE_ID.test(x)) : [];
}
