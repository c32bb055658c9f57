/** Listening on a Unix socket that only this user can connect to. */
import { chmodSync } from 'node:fs';
import type { Server } from 'node:net';

/**
 * `server` listens at `path` (in a 0700 directory), the socket 0600 from its first moment: the
 * umask is narrowed while it is created, then put back. Rejects with the listen error.
 */
export async function listenPrivate(server: Server, path: string): Promise<void> {
  const previous = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(previous);
  }
  chmodSync(path, 0o600);
}
