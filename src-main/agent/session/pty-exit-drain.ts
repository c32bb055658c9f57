/**
 * Makes sure the last output of a program reaches us, working around two ways node-pty (1.1.0)
 * loses it on Linux (microsoft/node-pty#72, #726):
 *
 * - libuv treats POLLHUP together with a short read as end-of-stream. A pty master signals
 *   POLLHUP as soon as the program closes its side, while the kernel may still hold many
 *   kilobytes for us, and pty reads are short. So the stream 'end's early.
 * - node-pty destroys the stream 200 ms after the program exits, read to the end or not: an agent
 *   that is busy at that moment (parsing a flood of output into the mirror) loses the rest.
 *
 * Both times the master fd is still open, so we read what is left synchronously (it is
 * non-blocking: the loop stops at EAGAIN, or at EIO once the buffer is empty) and hand it to
 * `deliver` before the stream goes away. This reaches into node-pty's private `_socket`; if it
 * is missing (another version), nothing is patched, and the session tests that check the last
 * line after a flood catch the difference.
 */
import { readSync } from 'node:fs';
import type { Socket } from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import type { IPty } from '@lydell/node-pty';

/** Bound on one synchronous drain, in case a background process keeps writing. */
const MAX_DRAIN_BYTES = 16 * 1024 * 1024;

export function drainOutputAfterExit(pty: IPty, deliver: (data: string) => void): void {
  const socket = (pty as unknown as { _socket?: Socket })._socket;
  const fd = (pty as unknown as { fd?: number }).fd;
  if (!socket || typeof socket.destroy !== 'function' || typeof fd !== 'number') return;

  let drained = false;
  const drain = (): void => {
    if (drained) return;
    drained = true;
    // First what the stream itself has buffered (while paused): read() emits it as 'data', in order.
    while (socket.readableLength > 0 && socket.read() !== null);
    const decoder = new StringDecoder('utf8');
    const buf = Buffer.allocUnsafe(64 * 1024);
    let total = 0;
    while (total < MAX_DRAIN_BYTES) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch {
        break; // EAGAIN: nothing more now; EIO: the other side is closed and the buffer empty
      }
      if (n <= 0) break;
      total += n;
      const text = decoder.write(buf.subarray(0, n));
      if (text) deliver(text);
    }
    const rest = decoder.end();
    if (rest) deliver(rest);
  };

  socket.prependListener('end', drain);
  const destroy = socket.destroy.bind(socket);
  socket.destroy = function drainThenDestroy(error?: Error): Socket {
    if (!socket.destroyed) drain();
    return destroy(error);
  };
}
