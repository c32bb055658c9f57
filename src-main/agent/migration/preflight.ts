/**
 * What a session needs from the machine it moves to, checked before it is frozen: the working
 * directories of its processes, and the regular files they have open, which the target must
 * have identically (same path, size and content hash). Mapped files (programs, libraries) are
 * not listed: the image carries them.
 */
import { createHash, type Hash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { DEFAULT_SEND_FILES_UP_TO, type FileNeed } from '../../api/protocol.js';
import { VosError } from '../../api/errors.js';
import { fdOpenMode, openFds, processTree } from '../../base/process-tree.js';

/** Files up to this size are hashed whole; bigger ones by size, first and last MiB. */
export const HASH_WHOLE_LIMIT = 64 * 1024 * 1024;
const EDGE = 1024 * 1024;

/** Bytes that hashing a file of `size` reads (see fileHashAsync). */
export function hashCost(size: number): number {
  return size <= HASH_WHOLE_LIMIT ? size : 2 * EDGE;
}

/**
 * A file's content hash (whole up to HASH_WHOLE_LIMIT; else its size, first and last MiB), read
 * in chunks without holding the event loop: each MiB is read by the thread pool and hashed in one
 * short step, so the agent answers in between.
 */
export async function fileHashAsync(path: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(EDGE);
    const readRange = async (h: Hash, from: number, to: number): Promise<void> => {
      for (let off = from; off < to; ) {
        const { bytesRead } = await handle.read(buf, 0, Math.min(buf.length, to - off), off);
        if (bytesRead <= 0) break;
        h.update(buf.subarray(0, bytesRead));
        off += bytesRead;
      }
    };
    if (size <= HASH_WHOLE_LIMIT) await readRange(hash, 0, size);
    else {
      hash.update(`size ${size}\0`);
      await readRange(hash, 0, EDGE);
      await readRange(hash, size - EDGE, size);
    }
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}

export interface SessionNeeds {
  dirs: string[];
  files: FileNeed[];
  rssBytes: number;
}

/** An open regular file of a session, not hashed yet. */
export type OpenFile = Omit<FileNeed, 'hash'>;

/**
 * The working directories and open regular files of the processes under `root` (`upTo`: only
 * files of at most that many bytes, the others are not listed), and their resident memory.
 */
export function sessionFiles(root: number, upTo = Infinity): { dirs: string[]; files: OpenFile[]; rssBytes: number } {
  const dirs = new Set<string>();
  const files = new Map<string, OpenFile>();
  let rssBytes = 0;
  // The session's processes: vos-init's outer process, pod init, and the programs under it.
  for (const pid of processTree(root)) {
    try {
      dirs.add(readlinkSync(`/proc/${pid}/cwd`));
    } catch {
      /* gone, or not ours to read */
    }
    try {
      rssBytes += Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * 4096;
    } catch {
      /* gone */
    }
    for (const { fd, target } of openFds(pid)) {
      if (!target.startsWith('/') || target.startsWith('/dev/') || target.startsWith('/proc/') || target.endsWith(' (deleted)')) continue;
      const appends = fdOpenMode(pid, fd) === 'append';
      const known = files.get(target);
      if (known) {
        if (!appends) delete known.appendOnly;
        continue;
      }
      try {
        const st = statSync(target);
        if (!st.isFile() || st.size > upTo) continue;
        files.set(target, { path: target, size: st.size, mode: st.mode & 0o7777, ...(appends ? { appendOnly: true } : {}) });
      } catch {
        /* went away: the image carries what is open */
      }
    }
  }
  // The root's own cwd is the agent's side of things (vos-init starts where the session does).
  return { dirs: [...dirs], files: [...files.values()], rssBytes };
}

/**
 * sessionFiles with each file's hash. The files are hashed in steps (fileHashAsync): a session
 * with large files open does not hold the agent's event loop.
 */
export async function sessionNeeds(root: number, upTo = Infinity): Promise<SessionNeeds> {
  const { dirs, files, rssBytes } = sessionFiles(root, upTo);
  const needs: FileNeed[] = [];
  for (const f of files) {
    try {
      needs.push({ ...f, hash: await fileHashAsync(f.path, f.size) });
    } catch {
      /* went away: the image carries what is open */
    }
  }
  return { dirs, files: needs, rssBytes };
}

/**
 * The restore note for files found here with other content that were taken as they are:
 * `appends`, those the session only appends to; `asked`, those the user asked to take so.
 */
export function takenAsIsNote(appends: string[], asked: string[] = []): string {
  const parts: string[] = [];
  if (appends.length) {
    const it = appends.length > 1 ? 'them' : 'it';
    parts.push(`${appends.join(', ')}: other content than at the checkpoint; the session only appends to ${it}, so it goes on appending to ${it} as ${appends.length > 1 ? 'they are' : 'it is'} here`);
  }
  if (asked.length) {
    parts.push(`${asked.join(', ')}: other content than at the checkpoint; the session uses ${asked.length > 1 ? 'them as they are' : 'it as it is'} here, as asked (take as is)`);
  }
  return parts.join('; ');
}

/**
 * Marks the files of `needs` the user asked to take as they are (`takeAsIs`); a path that is not
 * among them is a mistake worth saying (a typo would otherwise change nothing, silently).
 */
export function markAsIs(needs: FileNeed[], takeAsIs: string[] | undefined): FileNeed[] {
  if (!takeAsIs?.length) return needs;
  const known = new Set(needs.map((f) => f.path));
  const unknown = takeAsIs.filter((p) => !known.has(p));
  if (unknown.length) {
    throw new VosError('invalid_params', `${unknown.join(', ')}: not a file the session has open (take as is names files of the session only)`);
  }
  const asked = new Set(takeAsIs);
  return needs.map((f) => (asked.has(f.path) ? { ...f, asIs: true } : f));
}

/** What this machine takes sent along, whatever the source offers (its own limits, not the sender's word). */
export interface AcceptLimits {
  /** Each file sent along at most this big. */
  fileBytes: number;
  /** All files sent along for one migration together at most this big. */
  totalBytes: number;
}

export const DEFAULT_ACCEPT_LIMITS: AcceptLimits = { fileBytes: DEFAULT_SEND_FILES_UP_TO, totalBytes: 256 * 1024 * 1024 };

/**
 * Bytes this machine reads to compare the files one offer names (files up to 64 MiB are read
 * whole): a peer's offer of 100 large files made it read 6 GB. More is refused before any is read.
 */
export const HASH_BUDGET_PER_OFFER = 1024 * 1024 * 1024;

/**
 * What is wrong here for a session needing these (empty when it can come), and the files to ask
 * the source to send along: those missing here altogether and at most `sendUpTo` bytes (the
 * source's limit) and this machine's own `accept` limits. A file that is here with other content
 * is never replaced: that is a refusal, which says only that it differs (not its size or hash
 * here: the peer learns nothing of this machine's files beyond "the same or not"), except a file
 * the session only appends to (FileNeed.appendOnly), taken as it is: `takenAsIs`, for the note,
 * and one the user asked to take as it is (FileNeed.asIs): `askedAsIs`. The refusal names the
 * way to ask for that.
 */
export async function missingHere(
  dirs: string[],
  files: FileNeed[],
  sendUpTo: number,
  accept: AcceptLimits = DEFAULT_ACCEPT_LIMITS,
  /** Bytes it may read to compare files that are here (HASH_BUDGET_PER_OFFER for a peer's offer). */
  hashBudget = HASH_BUDGET_PER_OFFER,
): Promise<{ problems: string[]; wanted: FileNeed[]; takenAsIs: string[]; askedAsIs: string[]; differing: string[] }> {
  const problems: string[] = [];
  const wanted: FileNeed[] = [];
  const takenAsIs: string[] = [];
  const askedAsIs: string[] = [];
  /** The problems that are files with other content here (the user may take them as they are). */
  const differing: string[] = [];
  /** A file here with other content: a refusal, unless the session only appends to it or the user said so. */
  const differs = (f: FileNeed): void => {
    if (f.appendOnly) takenAsIs.push(f.path);
    else if (f.asIs) askedAsIs.push(f.path);
    else {
      problems.push(`${f.path} differs here (other content; to let the session use it as it is, ask again with --take-as-is ${f.path})`);
      differing.push(f.path);
    }
  };
  let total = 0;
  const compare: FileNeed[] = [];
  for (const dir of dirs) {
    try {
      if (!statSync(dir).isDirectory()) problems.push(`${dir} is not a directory here`);
    } catch {
      problems.push(`the directory ${dir} does not exist here`);
    }
  }
  for (const f of files) {
    let size: number;
    try {
      const st = statSync(f.path);
      if (!st.isFile()) {
        problems.push(`${f.path} is not a regular file here`);
        continue;
      }
      size = st.size;
    } catch {
      if (f.size > sendUpTo) {
        problems.push(`${f.path} does not exist here (${f.size} bytes: more than the ${sendUpTo} bytes up to which open files are sent along; see vos migrate --send-files-up-to)`);
      } else if (f.size > accept.fileBytes) {
        problems.push(`${f.path} does not exist here (${f.size} bytes: more than the ${accept.fileBytes} bytes this machine accepts sent along)`);
      } else if (total + f.size > accept.totalBytes) {
        problems.push(`${f.path} does not exist here, and with it the files to send along would be more than the ${accept.totalBytes} bytes this machine accepts for one move`);
      } else {
        total += f.size;
        wanted.push(f);
      }
      continue;
    }
    if (size !== f.size) differs(f);
    else compare.push(f);
  }
  // Counted before anything is read: an offer over the budget costs this machine nothing.
  const cost = compare.reduce((n, f) => n + hashCost(f.size), 0);
  if (cost > hashBudget) {
    problems.push(`comparing the ${compare.length} files it has open would mean reading ${cost} bytes here, more than the ${hashBudget} bytes this machine reads for one move`);
    return { problems, wanted, takenAsIs, askedAsIs, differing };
  }
  for (const f of compare) {
    let same = false;
    try {
      same = (await fileHashAsync(f.path, f.size)) === f.hash;
    } catch {
      /* unreadable here: not the same */
    }
    if (!same) differs(f);
  }
  return { problems, wanted, takenAsIs, askedAsIs, differing };
}

/**
 * The refusal's details: when nothing but files with other content here stands in the way, the
 * paths to ask again with (`takeAsIs`), for the app to offer that.
 */
export function refusalDetails(checked: { problems: string[]; differing: string[] }): { takeAsIs?: string[] } {
  return checked.differing.length > 0 && checked.differing.length === checked.problems.length ? { takeAsIs: checked.differing } : {};
}
