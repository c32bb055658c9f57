/**
 * A restore's status channel: a Unix socket the agent listens on (0600, in the private pods
 * directory) and passes to `vos-init restore --status PATH`. The restorer connects first thing
 * and sends its outcome as one status line (status-line.ts): the failure with its code, file
 * and record, or success. Nothing is read off the terminal.
 */
import { unlinkSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { VosError } from '../../api/errors.js';
import { restoreOutcome, STATUS_LINE_MAX, type RestoreOutcome } from './status-line.js';
import { listenPrivate } from '../../base/private-socket.js';

export interface RestoreStatus {
  /** The outcome; rejects with the restorer's VosError. Stays pending until a line comes. */
  outcome: Promise<RestoreOutcome>;
  /** Settles once the outcome is known or the restorer's connection ended without a line. */
  settled: Promise<void>;
  /** Stops listening and removes the socket (the outcome, if any, stays). */
  close(): void;
}

export async function listenForRestoreStatus(path: string): Promise<RestoreStatus> {
  try {
    unlinkSync(path);
  } catch {
    /* not there */
  }
  let settle!: { resolve: (o: RestoreOutcome) => void; reject: (e: VosError) => void };
  const outcome = new Promise<RestoreOutcome>((resolve, reject) => (settle = { resolve, reject }));
  outcome.catch(() => {}); // the caller may stop waiting (the session ended, a timeout)
  let markSettled!: () => void;
  const settled = new Promise<void>((resolve) => (markSettled = resolve));
  let conn: Socket | null = null;

  const server = createServer((socket) => {
    if (conn) return void socket.destroy(); // one restorer, one line
    conn = socket;
    server.close();
    let buffer = '';
    let done = false;
    const finish = (line: string | null): void => {
      if (done) return;
      done = true;
      socket.destroy();
      if (line !== null) {
        try {
          settle.resolve(restoreOutcome(line));
        } catch (err) {
          settle.reject(err instanceof VosError ? err : new VosError('restore_failed', String(err)));
        }
      }
      markSettled();
    };
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      buffer += d;
      const nl = buffer.indexOf('\n');
      if (nl >= 0) finish(buffer.slice(0, nl));
      else if (buffer.length > STATUS_LINE_MAX) finish(buffer.slice(0, STATUS_LINE_MAX));
    });
    socket.on('error', () => finish(null));
    socket.on('close', () => finish(null));
  });
  try {
    await listenPrivate(server, path);
  } catch (err) {
    throw new VosError('restore_failed', `cannot listen for the restorer's status at ${path}: ${(err as Error).message}`, { path });
  }
  return {
    outcome,
    settled,
    close() {
      server.close();
      (conn as Socket | null)?.destroy();
      try {
        unlinkSync(path);
      } catch {
        /* gone */
      }
    },
  };
}
