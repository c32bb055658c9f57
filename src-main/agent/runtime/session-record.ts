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
import { MAX_ARGS, MAX_SCREEN_CELLS, MAX_STRING, MAX_TERMINAL_DIMENSION } from '../../api/validate.js';
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

/**
 * What is wrong with a SESSION record's content, or null: every field the agent uses, with the
 * API's limits (a restored session gets the record's terminal size and command as a new one
 * would from session.create: a damaged image must not make the agent allocate what no client
 * could make it).
 */
export function sessionRecordProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'is not a JSON object';
  const r = value as Record<string, unknown>;
  if (r.version !== 1) return 'has an unknown version';
  for (const key of ['name', 'command', 'cwd', 'agent', 'hostname'] as const) {
    const v = r[key];
    if (typeof v !== 'string' || v.length > MAX_STRING) return `has no valid "${key}" (a string of at most ${MAX_STRING} characters)`;
  }
  if (!Array.isArray(r.args) || r.args.length > MAX_ARGS || r.args.some((a) => typeof a !== 'string' || a.length > MAX_STRING)) {
    return `has no valid "args" (a list of at most ${MAX_ARGS} strings)`;
  }
  for (const key of ['cols', 'rows'] as const) {
    const v = r[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_TERMINAL_DIMENSION) {
      return `has no valid "${key}" (a whole number from 1 to ${MAX_TERMINAL_DIMENSION})`;
    }
  }
  if ((r.cols as number) * (r.rows as number) > MAX_SCREEN_CELLS) {
    return `names a terminal of ${r.cols as number} x ${r.rows as number}: columns times rows may be at most ${MAX_SCREEN_CELLS}`;
  }
  if (typeof r.snapshot !== 'string') return 'has no screen ("snapshot")';
  for (const key of ['startedAt', 'checkpointedAt'] as const) {
    if (typeof r[key] !== 'number' || !Number.isFinite(r[key])) return `has no valid "${key}" (a time in ms)`;
  }
  return null;
}

type Decoded = { record: SessionRecord } | { problem: string };

function decodeSessionRecord(payload: Buffer): Decoded {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    return { problem: 'is not valid JSON' };
  }
  const problem = sessionRecordProblem(value);
  return problem ? { problem } : { record: value as SessionRecord };
}

/** SESSION's payload in an image file and its place (from 1), or null if there is none. */
function findSessionPayload(path: string): { payload: Buffer | null; index: number } | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new VosError('bad_image', `cannot open ${path}: ${(err as Error).message}`, { path });
  }
  try {
    let index = 0;
    for (const record of recordsOf(fd)) {
      index++;
      if (record.type === RECORD.SESSION) return { payload: readPayload(fd, record), index };
    }
    return null;
  } finally {
    closeSync(fd);
  }
}

/** SESSION's payload in an image file, its CRC checked; null if there is none (or it is damaged). */
export function readSessionPayload(path: string): Buffer | null {
  return findSessionPayload(path)?.payload ?? null;
}

/**
 * Reads the SESSION record of an image (the image must have been verified: this checks only
 * this record's own CRC, and every field of it). Fails with `bad_image` when there is none, or
 * when it is damaged (naming the record).
 */
export function readSessionRecord(path: string): SessionRecord {
  const found = findSessionPayload(path);
  if (!found?.payload) throw new VosError('bad_image', `${path} has no session record: it was not made by vos checkpoint`, { path });
  const decoded = decodeSessionRecord(found.payload);
  if ('problem' in decoded) {
    throw new VosError('bad_image', `${path} is damaged: its session record ${decoded.problem}`, { path, record: `SESSION #${found.index}` });
  }
  return decoded.record;
}

/**
 * Finds the SESSION record in an image going by as a stream (a migration), without holding the
 * rest: feed it every chunk in order; `found` fires once with the record, if its CRC and its
 * fields (sessionRecordProblem) are right.
 * It judges nothing else: the restorer checks the whole image.
 */
export class SessionRecordWatcher {
  private readonly records: RecordStream;

  constructor(found: (record: SessionRecord) => void) {
    this.records = new RecordStream(RECORD.SESSION, (payload) => {
      this.records.stop();
      const decoded = payload ? decodeSessionRecord(payload) : null;
      if (decoded && 'record' in decoded) found(decoded.record); // else the session is never adopted
    });
  }

  push(chunk: Buffer): void {
    this.records.push(chunk);
  }
}
