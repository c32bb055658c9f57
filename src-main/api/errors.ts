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
  'session_exited', // the operation needs a running session
  'session_running', // the operation needs an exited session
  'spawn_failed',
  'bad_image', // an image that is truncated, damaged, or not an image
  'checkpoint_failed',
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
  'migration_failed', // the session could not move; it runs on where it was
  'internal',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface ErrorPayload {
  code: ErrorCode;
  message: string;
}

export class VosError extends Error {
  override readonly name = 'VosError';
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }

  toPayload(): ErrorPayload {
    return { code: this.code, message: this.message };
  }

  static fromPayload(payload: ErrorPayload): VosError {
    return new VosError(payload.code, payload.message);
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
