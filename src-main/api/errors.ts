/**
 * Errors that cross the API boundary. Every failure a client can see carries a stable `code`
 * (for programs) and a `message` written for the person at the keyboard (what went wrong and,
 * where possible, what to do about it).
 *
 * This module has no Node or DOM imports: the renderer, the CLI and the agent share it.
 */

export const ERROR_CODES = [
  'bad_frame', // a frame that is not valid JSON or not a message
  'frame_too_large', // a frame over the length limit
  'unsupported_protocol', // client and agent speak different protocol versions
  'not_ready', // a request before the hello exchange
  'unknown_method',
  'invalid_params',
  'unknown_session',
  'ambiguous_session',
  'unknown_image', // no image in the store by that id or prefix (or several)
  'session_exited', // the operation needs a running session
  'session_running', // the operation needs an exited session
  'spawn_failed',
  'bad_image', // an image that is truncated, damaged, or not an image
  'checkpoint_failed',
  // the session's program uses something vOS cannot checkpoint (a debugger attached, a SysV
  // message queue, a device, a socket; no pod): trying again does not help until the program changes
  'unsupported',
  'restore_failed',
  'timeout',
  'no_agent', // client side: nothing listens on the socket
  'agent_running', // another agent already owns this state directory
  'connection_closed',
  'unavailable', // a feature this agent cannot offer (e.g. no renderer bundle for web mode)
  'unknown_peer', // no known machine by that id prefix or name
  'ambiguous_peer',
  'peer_offline', // the machine is known but no link to it is up
  'unreachable', // nothing answered at that address
  'not_paired', // the operation needs a paired machine
  'pair_rejected', // the other side said no
  'wrong_code', // the verification code typed does not match
  'refused', // a peer refused (rate limit, impostor, unpaired request)
  'busy', // too many requests in flight on one connection: wait for answers, then ask again
  'migration_failed', // the session could not move; it runs on where it was
  'internal',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * What a failure is about, beyond its code and message, where that is known: the code of the
 * failure that caused it (a migration that failed because the target could not restore keeps
 * `restore_failed` here), and the file or image record involved.
 */
export interface ErrorDetails {
  cause?: ErrorCode;
  path?: string;
  record?: string;
  /**
   * A refusal that only files with other content there stand in the way of: asked again with
   * these as `takeAsIs`, the session uses them as they are (the app's "Move anyway").
   */
  takeAsIs?: string[];
}

export interface ErrorPayload extends ErrorDetails {
  code: ErrorCode;
  message: string;
}

/** Longest `path` or `record` kept from a payload (they come from other processes and peers). */
const MAX_DETAIL = 4096;
/** Most `takeAsIs` paths kept from a payload (more: the list is dropped). */
const MAX_TAKE_AS_IS = 64;

/** `takeAsIs` as a peer sent it, if it is a short list of absolute paths; otherwise undefined. */
function takeAsIsOf(value: unknown): string[] | undefined {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_TAKE_AS_IS) return undefined;
  const ok = value.every((p) => typeof p === 'string' && p.startsWith('/') && p.length <= MAX_DETAIL && !/[\0-\x1f\x7f]/.test(p));
  return ok ? (value as string[]) : undefined;
}

export class VosError extends Error {
  override readonly name = 'VosError';
  readonly details: ErrorDetails;
  constructor(
    readonly code: ErrorCode,
    message: string,
    details: ErrorDetails = {},
  ) {
    super(message);
    this.details = details;
  }

  toPayload(): ErrorPayload {
    return { code: this.code, message: this.message, ...this.details };
  }

  /** A payload from elsewhere (a peer, the runtime): details that are not what they claim are dropped. */
  static fromPayload(payload: ErrorPayload): VosError {
    const details: ErrorDetails = {};
    if (isErrorCode(payload.cause)) details.cause = payload.cause;
    if (typeof payload.path === 'string' && payload.path.length <= MAX_DETAIL) details.path = payload.path;
    if (typeof payload.record === 'string' && payload.record.length <= MAX_DETAIL) details.record = payload.record;
    const takeAsIs = takeAsIsOf(payload.takeAsIs);
    if (takeAsIs) details.takeAsIs = takeAsIs;
    const code = isErrorCode(payload.code) ? payload.code : 'internal';
    return new VosError(code, typeof payload.message === 'string' ? payload.message : 'unknown error', details);
  }

  /**
   * This failure as the reason of a wider one (`code`, with `message` in front): the cause's
   * code is kept (its own cause, if it had one), and so are the file and record it names.
   */
  static wrap(code: ErrorCode, message: string, cause: unknown): VosError {
    if (cause instanceof VosError) {
      return new VosError(code, message, { ...cause.details, cause: cause.details.cause ?? cause.code });
    }
    return new VosError(code, message);
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}

/** The message of any thrown value, for logs and last-resort replies. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
