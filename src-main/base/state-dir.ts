/**
 * The agent's state directory ($VOS_HOME, default $XDG_STATE_HOME/vos or ~/.local/state/vos) and
 * the files in it. The directory is the security boundary of the local API: it is 0700 and owned
 * by the user, so only that user can reach the socket inside it.
 */
import { mkdirSync, chmodSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { VosError } from '../api/errors.js';

/** Linux's sun_path is 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

export interface StatePaths {
  home: string;
  socket: string;
  lock: string;
  log: string;
}

export function resolveHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.VOS_HOME) return resolve(env.VOS_HOME);
  const stateBase = env.XDG_STATE_HOME ? resolve(env.XDG_STATE_HOME) : join(homedir(), '.local', 'state');
  return join(stateBase, 'vos');
}

export function statePaths(home: string): StatePaths {
  const paths = {
    home,
    socket: join(home, 'agent.sock'),
    lock: join(home, 'agent.pid'),
    log: join(home, 'agent.log'),
  };
  if (Buffer.byteLength(paths.socket) > MAX_SOCKET_PATH_BYTES) {
    throw new VosError(
      'invalid_params',
      `the state directory ${home} is too long for a Unix socket path (${Buffer.byteLength(paths.socket)} > ${MAX_SOCKET_PATH_BYTES} bytes); set VOS_HOME to a shorter path`,
    );
  }
  return paths;
}

/**
 * Creates the directory (and parents) if needed and makes it private: 0700, owned by us. A
 * directory owned by someone else is refused, since they could reach or replace our socket.
 */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = statSync(dir);
  if (!st.isDirectory()) throw new VosError('invalid_params', `${dir} exists and is not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw new VosError('invalid_params', `${dir} belongs to uid ${st.uid}, not to you (uid ${uid}); choose another VOS_HOME`);
  }
  if ((st.mode & 0o777) !== 0o700) chmodSync(dir, 0o700);
}
