/**
 * Open files a migrating session needs and this machine lacks, sent along by the source (one
 * link stream each). Each lands in a hidden file next to its place, is checked against the size
 * and hash the source announced, and only then takes its name — without replacing anything that
 * appeared there meanwhile. If the migration does not happen, every file it put here goes again.
 *
 * The source is a paired machine, not this user: what it names is checked. A path must be
 * absolute and normalized (checkIncomingPath); its directory must be reached without a symbolic
 * link (so a link planted here cannot send the file elsewhere); the stream may not bring more
 * than the size announced; and the file gets at most rwx bits (no setuid, setgid or sticky).
 */
import { chmod, link, open, realpath, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { VosError, describeError } from '../../api/errors.js';
import type { FileNeed } from '../../api/protocol.js';
import { fileHashAsync } from './preflight.js';

/** Longest path a peer may name (Linux's PATH_MAX). */
const MAX_PATH = 4096;
/** The permission bits a file sent along may have: no setuid, setgid or sticky bit. */
const MODE_MASK = 0o777;

/**
 * Why `path` (named by a peer) may not be used here, or null: absolute and normalized only. A
 * directory may be "/"; a file may not.
 */
export function checkIncomingPath(path: string, kind: 'file' | 'dir' = 'file'): string | null {
  const shown = JSON.stringify(path.slice(0, 200));
  if (path.includes('\0')) return `the path ${shown} holds a NUL character`;
  if (path.length > MAX_PATH) return `a path is longer than ${MAX_PATH} characters`;
  if (!path.startsWith('/')) return `the path ${shown} is not absolute`;
  if (path === '/' && kind === 'dir') return null;
  if (path.endsWith('/')) return `the path ${shown} does not name a ${kind === 'dir' ? 'directory' : 'file'} in normal form`;
  if (path.includes('//') || path.split('/').some((c) => c === '.' || c === '..') || posix.normalize(path) !== path) {
    return `the path ${shown} is not in normal form (no ".", "..", or "//")`;
  }
  return null;
}

/** Fails once more than `limit` bytes came: a source may not send more than it announced. */
function atMost(limit: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      seen += chunk.length;
      if (seen > limit) done(new Error(`more than the ${limit} bytes announced came`));
      else done(null, chunk);
    },
  });
}

/** Throws unless `dir` is reached without a symbolic link (its real path is itself). */
async function noSymlinkTo(dir: string): Promise<void> {
  let real: string;
  try {
    real = await realpath(dir);
  } catch (err) {
    throw new Error(`its directory cannot be used: ${describeError(err)}`);
  }
  if (real !== dir) throw new Error(`its directory ${dir} is reached through a symbolic link here`);
}

export class IncomingFiles {
  private readonly pending = new Map<string, FileNeed>();
  private readonly done = new Map<string, Promise<void>>();
  private readonly placed: string[] = [];

  constructor(
    private readonly migration: string,
    wanted: FileNeed[],
  ) {
    for (const f of wanted) this.pending.set(f.path, f);
  }

  get paths(): string[] {
    return [...this.pending.keys()];
  }

  /** A stream carrying `path`; false if that file was not asked for (or came already). */
  accept(path: string, data: Readable): boolean {
    const need = this.pending.get(path);
    if (!need || this.done.has(path)) return false;
    const landed = this.land(need, data);
    landed.catch(() => {}); // reported through all()
    this.done.set(path, landed);
    return true;
  }

  /** Resolves when every wanted file is in place; rejects with the first reason one is not. */
  async all(): Promise<number> {
    const missing = this.paths.filter((p) => !this.done.has(p));
    if (missing.length > 0) throw new VosError('migration_failed', `the source did not send ${missing.join(', ')}`);
    await Promise.all(this.done.values());
    return this.pending.size;
  }

  /** The migration did not happen: remove what it put here. */
  async removeAll(): Promise<void> {
    await Promise.allSettled([...this.done.values()]);
    for (const path of this.placed.splice(0)) await unlink(path).catch(() => {});
  }

  private async land(need: FileNeed, data: Readable): Promise<void> {
    const problem = checkIncomingPath(need.path);
    if (problem) {
      data.destroy();
      throw new VosError('migration_failed', `cannot put a file here: ${problem}`);
    }
    const dir = dirname(need.path);
    const temp = join(dir, `.${basename(need.path)}.vos-incoming-${this.migration}`);
    let created = false;
    try {
      await noSymlinkTo(dir);
      // 'wx': O_EXCL, so an existing name (a symbolic link too) is never followed or replaced.
      const handle = await open(temp, 'wx', 0o600);
      created = true;
      await pipeline(data, atMost(need.size), handle.createWriteStream()); // closes the handle
      const size = (await stat(temp)).size;
      if (size !== need.size) throw new Error(`it arrived cut short (${size} of ${need.size} bytes)`);
      if ((await fileHashAsync(temp, need.size)) !== need.hash) throw new Error('it arrived damaged (its hash differs)');
      await chmod(temp, need.mode & MODE_MASK);
      await noSymlinkTo(dir); // again, just before it takes its name
      await link(temp, need.path); // fails if something took the name meanwhile: nothing replaced
      this.placed.push(need.path);
    } catch (err) {
      data.destroy(); // what is left of it is not wanted
      throw new VosError('migration_failed', `cannot put ${need.path} here: ${describeError(err)}`);
    } finally {
      // Only what this migration created: a name that was taken already is not ours to remove.
      if (created) await unlink(temp).catch(() => {});
    }
  }
}
