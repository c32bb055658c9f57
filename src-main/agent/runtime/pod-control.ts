/**
 * A pod's control socket, from the agent: one line out, one line back (init/control.h).
 * Requests that pass a descriptor (checkpoint) go through the `vos-init checkpoint` helper.
 */
import { connect } from 'node:net';
import { VosError, type ErrorCode } from '../../api/errors.js';

/** The `k=v` pairs of a line from the runtime (a pod's reply, the checkpoint helper's status). */
export function lineFields(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of line.split(' ')) {
    const eq = part.indexOf('=');
    if (eq > 0) out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

/**
 * A request to a pod that failed before any reply: `session_exited` when nothing is there
 * (ENOENT, ECONNREFUSED: the pod is gone, or not up yet), `timeout`, or `unavailable`. The
 * socket's errno code stays in `errno` for callers that tell those apart.
 */
export class PodRequestError extends VosError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly errno: string | null,
    socketPath: string,
  ) {
    super(code, message, { path: socketPath });
  }
}

function connectError(socketPath: string, err: NodeJS.ErrnoException): PodRequestError {
  const errno = err.code ?? null;
  if (errno === 'ENOENT' || errno === 'ECONNREFUSED') {
    return new PodRequestError('session_exited', `the session's pod is gone (nothing listens at ${socketPath})`, errno, socketPath);
  }
  return new PodRequestError('unavailable', `cannot talk to the session's pod: ${err.message}`, errno, socketPath);
}

/** One request line to a pod; resolves with its reply line ("ok ...", "error {status}": see status-line.ts). */
export function podRequest(socketPath: string, line: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let buffer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new PodRequestError('timeout', `no answer from the pod within ${timeoutMs / 1000} s`, null, socketPath));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(line + '\n'));
    socket.on('data', (d: string) => {
      buffer += d;
      const nl = buffer.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        socket.end();
        resolve(buffer.slice(0, nl));
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(connectError(socketPath, err));
    });
    socket.on('close', () => {
      clearTimeout(timer);
      if (!buffer.includes('\n')) {
        reject(new PodRequestError('unavailable', 'the pod closed the connection without answering', null, socketPath));
      }
    });
  });
}
