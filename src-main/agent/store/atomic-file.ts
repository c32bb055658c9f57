/**
 * Files that appear whole or not at all: each is written to a temporary file beside its place
 * (created with O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600, so a symlink or a file planted under
 * that name is never written through), flushed, renamed over its place, and the directory
 * flushed. A crash or a full disk at any point leaves whatever was there before; the
 * temporary file is removed on failure (a crash leaves it, named `.NAME.tmp-*`, for a sweep).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { VosError } from '../../api/errors.js';

/** Where temporary files of this module start their names (a sweep may remove them). */
export const TEMP_MARK = '.tmp-';

export interface TempFile {
  /** Open for writing, mode 0600. */
  fd: number;
  path: string;
  /** Where it goes on commit. */
  final: string;
}

/** A new temporary file beside `final`; it never follows a symlink nor reuses an existing file. */
export function createTempBeside(final: string): TempFile {
  const path = join(dirname(final), `.${basename(final)}${TEMP_MARK}${randomBytes(6).toString('hex')}`);
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    fchmodSync(fd, 0o600); // whatever the umask
  } catch (err) {
    closeSync(fd);
    unlinkSync(path);
    throw err;
  }
  return { fd, path, final };
}

/** Flushes the temporary file, closes it and renames it over its place; then flushes the directory. */
export function commitTemp(temp: TempFile): void {
  try {
    fsyncSync(temp.fd);
  } finally {
    closeSync(temp.fd);
  }
  renameSync(temp.path, temp.final); // replaces a symlink at `final` itself, never its target
  fsyncDir(dirname(temp.final));
}

/** Closes (if still open) and removes a temporary file that will not be committed. */
export function discardTemp(temp: TempFile): void {
  try {
    closeSync(temp.fd);
  } catch {
    /* closed by commitTemp before it failed */
  }
  try {
    unlinkSync(temp.path);
  } catch {
    /* renamed already, or never there */
  }
}

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes `data` to `path` atomically (temporary file, fsync, rename, fsync of the directory). */
export function writeFileAtomic(path: string, data: Buffer | string): void {
  const temp = createTempBeside(path);
  try {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    for (let off = 0; off < buf.length; ) off += writeSync(temp.fd, buf, off, buf.length - off);
    commitTemp(temp);
  } catch (err) {
    discardTemp(temp);
    throw err;
  }
}

/** ENOSPC (and EDQUOT) as words a user can act on; other errors as they are. */
export function writeFailure(err: unknown, what: string): VosError {
  if (err instanceof VosError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  const message =
    code === 'ENOSPC' || code === 'EDQUOT'
      ? `the disk is full (writing ${what}); nothing was replaced`
      : code === 'ELOOP' || code === 'EEXIST'
        ? `cannot write ${what}: a symlink or another file is in the way of its temporary file`
        : `cannot write ${what}: ${(err as Error).message}`;
  return new VosError('checkpoint_failed', message, { path: what });
}
