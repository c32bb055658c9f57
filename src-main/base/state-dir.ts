/**
 * The agent's state directory ($VOS_HOME, default $XDG_STATE_HOME/vos or ~/.local/state/vos) and
 * the files in it. The directory is the security boundary of the local API: it is 0700 and owned
 * by the user, so only that user can reach the socket inside it.
 */
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
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

/**
 * Writes `text` to `path` whole or not at all (a temporary file renamed over it), readable by the
 * owner only. `durable`: also synced to disk, file and directory entry, before it returns (what
 * must survive a crash of the machine, not only of the agent).
 */
export function writePrivateFile(path: string, text: string, options: { durable?: boolean } = {}): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, text);
      if (options.durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  if (options.durable) {
    const dir = openSync(dirname(path), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  }
}
