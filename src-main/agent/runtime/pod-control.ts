/**
 * A pod's control socket, from the agent: one line out, one line back (init/control.h).
 * Requests that pass a descriptor (checkpoint) go through the `vos-init checkpoint` helper.
 */
import { connect } from 'node:net';

/** The `k=v` pairs of a line from the runtime (a pod's reply, the checkpoint helper's status). */
export function lineFields(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of line.split(' ')) {
    const eq = part.indexOf('=');
    if (eq > 0) out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

export function podRequest(socketPath: string, line: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let buffer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer from the pod within ${timeoutMs / 1000} s`));
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
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      if (!buffer.includes('\n')) reject(new Error('the pod closed the connection without answering'));
    });
  });
}

/** Asks until the socket exists (the pod creates it as it starts), up to timeoutMs in all. */
export async function podRequestWhenUp(socketPath: string, line: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await podRequest(socketPath, line, Math.max(1000, deadline - Date.now()));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== 'ENOENT' && code !== 'ECONNREFUSED') || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 5)); // a failed connect to a missing socket costs microseconds
    }
  }
}
