/**
 * The agent's record in an image: SESSION (docs/image-format.md), the session's metadata and
 * its screen. The agent builds its content and hands it to `vos-init checkpoint`, which writes
 * it into the image (vos-init writes every record); on restore the agent reads it back, from a
 * file or from a migration's stream.
 */
import { closeSync, openSync } from 'node:fs';
import { hostname } from 'node:os';
import { VosError } from '../../api/errors.js';
import type { SessionShape } from '../../api/protocol.js';
import { RECORD, RecordStream, readPayload, recordsOf } from './image-records.js';

export interface SessionRecord extends SessionShape {
  version: 1;
  /** The screen and scrollback (xterm serialize format) at the checkpoint. */
  snapshot: string;
  startedAt: number;
  checkpointedAt: number;
  agent: string;
  hostname: string;
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

/** SESSION's payload: the record as UTF-8 JSON. */
export function encodeSessionRecord(record: SessionRecord): Buffer {
  return Buffer.from(JSON.stringify(record), 'utf8');
}

function decodeSessionRecord(payload: Buffer | null): SessionRecord | null {
  if (!payload) return null;
  try {
    return JSON.parse(payload.toString('utf8')) as SessionRecord;
  } catch {
    return null;
  }
}

/** SESSION's payload in an image file, its CRC checked; null if there is none (or it is damaged). */
export function readSessionPayload(path: string): Buffer | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new VosError('bad_image', `cannot open ${path}: ${(err as Error).message}`, { path });
  }
  try {
    for (const record of recordsOf(fd)) {
      if (record.type === RECORD.SESSION) return readPayload(fd, record);
    }
    return null;
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads the SESSION record of an image (the image must have been verified: this checks only
 * this record's own CRC). Fails with `bad_image` when there is none.
 */
export function readSessionRecord(path: string): SessionRecord {
  const record = decodeSessionRecord(readSessionPayload(path));
  if (!record) throw new VosError('bad_image', `${path} has no session record: it was not made by vos checkpoint`, { path });
  return record;
}

/**
 * Finds the SESSION record in an image going by as a stream (a migration), without holding the
 * rest: feed it every chunk in order; `found` fires once with the record, if its CRC is right.
 * It judges nothing else: the restorer checks the whole image.
 */
export class SessionRecordWatcher {
  private readonly records: RecordStream;

  constructor(found: (record: SessionRecord) => void) {
    this.records = new RecordStream(RECORD.SESSION, (payload) => {
      this.records.stop();
      const record = decodeSessionRecord(payload);
      if (record) found(record); // else the restorer refuses the image
    });
  }

  push(chunk: Buffer): void {
    this.records.push(chunk);
  }
}
