/**
 * Open files a migrating session needs and this machine lacks, sent along by the source (one
 * link stream each). Each lands in a hidden file next to its place, is checked against the size
 * and hash the source announced, and only then takes its name — without replacing anything that
 * appeared there meanwhile. If the migration does not happen, every file it put here goes again.
 */
import { createWriteStream } from 'node:fs';
import { chmod, link, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { VosError, describeError } from '../../api/errors.js';
import type { FileNeed } from '../../api/protocol.js';
import { fileHash } from './preflight.js';

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
    const temp = join(dirname(need.path), `.${basename(need.path)}.vos-incoming-${this.migration}`);
    try {
      await pipeline(data, createWriteStream(temp, { flags: 'wx', mode: 0o600 }));
      const size = (await stat(temp)).size;
      if (size !== need.size) throw new Error(`it arrived cut short (${size} of ${need.size} bytes)`);
      if (fileHash(temp, need.size) !== need.hash) throw new Error('it arrived damaged (its hash differs)');
      await chmod(temp, need.mode);
      await link(temp, need.path); // fails if something took the name meanwhile: nothing replaced
      this.placed.push(need.path);
    } catch (err) {
      throw new VosError('migration_failed', `cannot put ${need.path} here: ${describeError(err)}`);
    } finally {
      await unlink(temp).catch(() => {});
    }
  }
}
