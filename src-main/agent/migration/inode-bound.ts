/**
 * Files a program of a migrating session knows by their inode: an SQLite database (SQLite
 * remembers the inode of the file it opened and, when its path names another one, takes the
 * database as moved and refuses to write: "attempt to write a readonly database"). On another
 * machine such a file is another inode (sent along, or a copy there), unless both machines
 * share the storage. The source names them with their inode; the target refuses the move up
 * front, naming the file, when its file at that path is not that inode, instead of restoring a
 * program that can no longer write. Read only: /proc/PID/maps (is libsqlite3 loaded) and the
 * files' stat through /proc/PID/fd.
 */
import { readFileSync, statSync } from 'node:fs';
import type { InodeBound } from '../../api/protocol.js';
import { openFds, programPids } from '../../base/process-tree.js';

/** At most this many are named in an offer (and checked by a target). */
export const MAX_INODE_BOUND = 64;

/** Whether the process has SQLite's library mapped (the programs known to check inodes). */
function usesSqlite(pid: number): boolean {
  try {
    return /\/libsqlite3[^/\n]*\.so/.test(readFileSync(`/proc/${pid}/maps`, 'utf8'));
  } catch {
    return false; // it ended meanwhile
  }
}

/**
 * The regular files that processes under `root` using SQLite have open, with their inodes; the
 * first `outer` levels of the tree (vos-init's outer process and pod init) are left out.
 */
export function sessionInodeBoundFiles(root: number, outer = 2): InodeBound[] {
  const found = new Map<string, number>();
  for (const pid of programPids(root, outer)) {
    if (!usesSqlite(pid)) continue;
    for (const { fd, target } of openFds(pid)) {
      if (!target.startsWith('/') || target.startsWith('/dev/') || target.startsWith('/proc/') || target.endsWith(' (deleted)')) continue;
      try {
        const st = statSync(`/proc/${pid}/fd/${fd}`); // the open file itself, not what the path names now
        if (st.isFile() && !found.has(target) && found.size < MAX_INODE_BOUND) found.set(target, st.ino);
      } catch {
        /* closed meanwhile */
      }
    }
  }
  return [...found].map(([path, inode]) => ({ path, inode }));
}

/** What keeps a program here from using these files as the very ones it had (empty: nothing). */
export function inodeBoundHere(files: InodeBound[]): string[] {
  const problems: string[] = [];
  for (const f of files.slice(0, MAX_INODE_BOUND)) {
    let inode: number | null = null;
    try {
      inode = statSync(f.path).ino;
    } catch {
      /* not here */
    }
    if (inode === f.inode) continue; // the same file: storage both machines share, or this machine
    problems.push(
      `SQLite in the session has ${f.path} open and checks that it stays the same file; ${inode === null ? 'it is not here, and a copy would be' : 'here it is'} another file, to which SQLite would refuse to write (keep the database on storage both machines share)`,
    );
  }
  return problems;
}
