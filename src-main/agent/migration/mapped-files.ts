/**
 * The files a migrating session's programs have mapped (their executables, libraries, a JVM's
 * modules file): an image carries the content of each one's mapped ranges, sent while the
 * session is frozen (node's executable alone is about 90 MB; a JVM moved with 230 ms of downtime,
 * most of it these). The target almost always has the same files (the same packages), so the
 * offer names them with their size and mtime (package files keep the mtime of the package on
 * every machine), the target says which it has alike, and the source leaves those out of the
 * image (FILE records of kind VOS_FILE_THERE: docs/image-format.md).
 *
 * Size and mtime alike are a guess, never trusted: the image still carries each file's content
 * hash, and a restore that finds the target's file different fails naming it; the move is then
 * made again with the content (migrator.ts). Read only: /proc/PID/maps and stat.
 */
import { readFileSync, statSync } from 'node:fs';
import type { MappedFile } from '../../api/protocol.js';
import { programPids } from '../../base/process-tree.js';

/** At most this many are named in an offer (and looked at by a target). */
export const MAX_MAPPED_FILES = 1024;

/** The paths of the private file mappings in a /proc/PID/maps text (their content goes into an image). */
export function privatelyMappedPaths(maps: string): string[] {
  const paths: string[] = [];
  for (const line of maps.split('\n')) {
    // start-end perms offset dev inode path
    const m = /^[0-9a-f]+-[0-9a-f]+ [r-][w-][x-]p [0-9a-f]+ [0-9a-f]+:[0-9a-f]+ (\d+) +(\/.*)$/.exec(line);
    if (!m || m[1] === '0' || m[2]!.endsWith(' (deleted)')) continue;
    paths.push(m[2]!);
  }
  return paths;
}

/** The regular files mapped privately by the session's programs (root's tree, `outer` levels left out). */
export function sessionMappedFiles(root: number, outer = 2): MappedFile[] {
  const found = new Map<string, MappedFile>();
  for (const pid of programPids(root, outer)) {
    let maps: string;
    try {
      maps = readFileSync(`/proc/${pid}/maps`, 'utf8');
    } catch {
      continue; // it ended meanwhile
    }
    for (const path of privatelyMappedPaths(maps)) {
      if (found.has(path) || found.size >= MAX_MAPPED_FILES) continue;
      const f = describe(path);
      if (f) found.set(path, f);
    }
  }
  return [...found.values()];
}

function describe(path: string): MappedFile | null {
  try {
    const st = statSync(path, { bigint: true });
    return st.isFile() ? { path, size: Number(st.size), mtimeNs: st.mtimeNs.toString() } : null;
  } catch {
    return null;
  }
}

/** Which of the offered files this machine has alike (same size and mtime, a regular file). */
export function mappedFilesHere(offered: MappedFile[]): string[] {
  const here: string[] = [];
  for (const f of offered.slice(0, MAX_MAPPED_FILES)) {
    const mine = describe(f.path);
    if (mine && mine.size === f.size && mine.mtimeNs === f.mtimeNs) here.push(f.path);
  }
  return here;
}

/** The target's answer as far as it names files offered (a peer's list is never taken as is). */
export function offeredOnly(answer: unknown, offered: MappedFile[]): string[] {
  if (!Array.isArray(answer)) return [];
  const names = new Set(offered.map((f) => f.path));
  return [...new Set(answer.filter((p): p is string => typeof p === 'string' && names.has(p)))];
}
