/**
 * The runtime's status values (src-main/runtime/common/status.h), decoded: a failure is one line
 * of JSON `{"code", "message", "path"?, "record"?}` — what the restorer sends on its status
 * channel, and what follows "error " in pod init's and the checkpoint helper's replies. A
 * restore's success is `{"ok": true, "held", "restored", "clocks", "placed", "note"?}`. Nothing
 * here trusts the line: a code that is not an API error code becomes the caller's, details that
 * are not strings are dropped, and a line that is not JSON is taken as plain words (older
 * runtimes, messages from before the runtime could speak).
 */
import { isErrorCode, VosError, type ErrorCode, type ErrorPayload } from '../../api/errors.js';

/** Longest status line read (the runtime's are at most about 4 KiB). */
export const STATUS_LINE_MAX = 16 * 1024;
/** Longest message kept from a status. */
const MAX_MESSAGE = 4096;

export interface RestoreOutcome {
  /** The processes wait at the barrier for "go" (a migration's target). */
  held: boolean;
  restored: number;
  /** "same", "kept" or "jumped" (see keep_clocks in restore.c). */
  clocks: string;
  /** Bytes of a migration's memory that were in memory as they arrived and moved into place (staging.c). */
  placed: number;
  /** What the restore could not carry (e.g. connections that were waiting, sockets to outside
   * the session), for the session's restoreNote; null when it carried everything. */
  note: string | null;
}

function parseObject(text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function clip(text: string): string {
  return text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE)}…` : text;
}

/** A failure's status (the JSON, or plain words) as a VosError; `fallback` when it names no code. */
export function errorFromStatus(text: string, fallback: ErrorCode): VosError {
  const trimmed = text.trim();
  const status = trimmed.startsWith('{') ? parseObject(trimmed) : null;
  if (!status || typeof status.message !== 'string') return new VosError(fallback, clip(trimmed) || 'no reason given');
  const payload: ErrorPayload = {
    code: isErrorCode(status.code) ? status.code : fallback,
    message: clip(status.message) || 'no reason given',
  };
  if (typeof status.path === 'string' && status.path) payload.path = status.path;
  if (typeof status.record === 'string' && status.record) payload.record = status.record;
  return VosError.fromPayload(payload);
}

/** A reply line from the runtime: null for "ok ..." (and the other non-failures), else its error. */
export function replyError(reply: string, fallback: ErrorCode): VosError | null {
  if (reply === 'error' || reply.startsWith('error ')) return errorFromStatus(reply.slice(6), fallback);
  return null;
}

/** The restorer's status line: its outcome, or (thrown) why it failed. */
export function restoreOutcome(line: string): RestoreOutcome {
  const status = parseObject(line.trim());
  if (status?.ok === true) {
    return {
      held: status.held === true,
      restored: typeof status.restored === 'number' ? status.restored : 0,
      clocks: typeof status.clocks === 'string' ? status.clocks : 'same',
      placed: typeof status.placed === 'number' && Number.isSafeInteger(status.placed) && status.placed >= 0 ? status.placed : 0,
      note: typeof status.note === 'string' && status.note ? clip(status.note) : null,
    };
  }
  if (status && typeof status.message === 'string') throw errorFromStatus(line, 'restore_failed');
  throw new VosError('restore_failed', `the restorer's status could not be read: ${clip(JSON.stringify(line.slice(0, 200)))}`);
}
