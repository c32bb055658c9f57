/**
 * The files a migrating session holds locks on (flock, POSIX and OFD locks: LOCKS in the image),
 * found by the source before anything stops, and checked by the target: the restore there takes
 * each lock again before the program runs, and fails if it cannot. A lock on the file held on
 * the target now, by another program, or by the session itself when the target is the same
 * machine (the frozen original still holds it until the move is done), refuses the move up
 * front, naming the file, instead of failing after the session was stopped. Read only: the
 * source reads its processes' fdinfo "lock:" lines, the target its /proc/locks.
 */
import { readFileSync, readlinkSync, readdirSync, statSync } from 'node:fs';
import { programPids } from '../../base/process-tree.js';

/** At most this many locked files are named in an offer (and checked by a target). */
export const MAX_LOCKED_FILES = 256;

/**
 * The absolute paths of the files the processes under `root` hold a lock on; the first `outer`
 * levels of the tree (a session: vos-init's outer process and pod init) are left out.
 */
export function sessionLockedFiles(root: number, outer = 2): string[] {
  const found = new Set<string>();
  for (const pid of programPids(root, outer)) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fdinfo`);
    } catch {
      continue; // it ended meanwhile
    }
    for (const fd of fds) {
      try {
        // The kernel lists the locks this fd's file description (flock, OFD) or process (POSIX) holds on it.
        if (!/^lock:/m.test(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))) continue;
        const path = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (path.startsWith('/') && found.size < MAX_LOCKED_FILES) found.add(path);
      } catch {
        /* closed meanwhile */
      }
    }
  }
  return [...found];
}

/** The device:inode keys of every file locked on this machine now (/proc/locks). */
function lockedHere(): Set<string> {
  const keys = new Set<string>();
  let text = '';
  try {
    text = readFileSync('/proc/locks', 'utf8');
  } catch {
    return keys;
  }
  for (const line of text.split('\n')) {
    // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (a "->" line waits for a lock: not held)
    if (line.includes('->')) continue;
    const m = /\s([0-9a-f]+):([0-9a-f]+):(\d+)\s/.exec(line);
    if (m) keys.add(`${parseInt(m[1]!, 16)}:${parseInt(m[2]!, 16)}:${m[3]}`);
  }
  return keys;
}

/** What keeps this machine from taking the session's locks again (empty: nothing). */
export function locksTakenHere(paths: string[]): string[] {
  const problems: string[] = [];
  let held: Set<string> | undefined;
  for (const path of paths.slice(0, MAX_LOCKED_FILES)) {
    let key: string;
    try {
      const st = statSync(path);
      key = `${Math.floor(st.dev / 256) & 0xfff}:${(st.dev & 0xff) | ((st.dev >> 12) & 0xfff00)}:${st.ino}`;
    } catch {
      continue; // not here: the check of the files it needs says so
    }
    if ((held ??= lockedHere()).has(key)) {
      problems.push(
        `the session holds a lock on ${path}, which is locked here now (by another program, or by the session itself when this is the same machine): its restore here could not take it`,
      );
    }
  }
  return problems;
}
