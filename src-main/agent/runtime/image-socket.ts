/**
 * Hands an image arriving as a stream (a migration) to the restorer: a Unix socket next to the
 * pod's control socket (0600, in the 0700 state directory), to which `vos-init restore
 * --image-socket` connects and reads until the end. The SESSION record is picked out on the way.
 * If the stream breaks, the restorer sees a truncated image and restores nothing; `failure`
 * says what really happened.
 */
import { unlinkSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { VosError } from '../../api/errors.js';
import { SessionRecordWatcher, type SessionRecord } from './session-record.js';
import { listenPrivate } from '../../base/private-socket.js';

const CONNECT_TIMEOUT_MS = 30_000;

export interface ImageFeed {
  /** Settles with a reason if the stream fails or the restorer never comes for it. */
  failure: Promise<string>;
  onSessionRecord(cb: (record: SessionRecord) => void): void;
  /** Stops feeding (restore over, or given up) and removes the socket. */
  abort(): void;
}

export async function feedImageSocket(path: string, image: Readable): Promise<ImageFeed> {
  try {
    unlinkSync(path);
  } catch {
    /* not there */
  }
  let failWith!: (why: string) => void;
  const failure = new Promise<string>((resolve) => (failWith = resolve));
  let recordListener: ((r: SessionRecord) => void) | null = null;
  let early: SessionRecord | null = null;
  const watcher = new SessionRecordWatcher((r) => (recordListener ? recordListener(r) : (early = r)));
  let conn: Socket | null = null;
  let finished = false;

  const server = createServer((socket) => {
    if (conn) return void socket.destroy(); // one reader only
    conn = socket;
    clearTimeout(timer);
    server.close();
    socket.on('error', () => {
      /* the restorer went away: its own exit says why */
    });
    image.on('data', (chunk: Buffer) => {
      watcher.push(chunk);
      if (!socket.write(chunk)) {
        image.pause();
        socket.once('drain', () => image.resume());
      }
    });
    image.once('end', () => {
      finished = true;
      socket.end();
    });
    image.once('error', (err: Error) => {
      failWith(`the image stream broke: ${err.message}`);
      socket.destroy();
    });
    image.once('close', () => {
      if (!finished) {
        failWith('the image stream ended before the image did');
        socket.destroy();
      }
    });
  });
  try {
    await listenPrivate(server, path);
  } catch (err) {
    throw new VosError('restore_failed', `cannot open a socket for the image at ${path}: ${(err as Error).message}`, { path });
  }
  const timer = setTimeout(() => {
    failWith(`the restorer did not come for the image within ${CONNECT_TIMEOUT_MS / 1000} s`);
    server.close();
  }, CONNECT_TIMEOUT_MS);
  timer.unref();

  return {
    failure,
    onSessionRecord(cb) {
      recordListener = cb;
      if (early) cb(early);
    },
    abort() {
      clearTimeout(timer);
      server.close();
      if (!finished) image.destroy();
      (conn as Socket | null)?.destroy();
      try {
        unlinkSync(path);
      } catch {
        /* gone */
      }
    },
  };
}
