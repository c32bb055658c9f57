/**
 * A directory of small records, one synced JSON file per migration id, that an agent killed
 * mid-migration finds again when it starts: the source's commit records and the target's
 * held-copy records (commit-journal.ts, held-journal.ts) are both this, with their own checker.
 * A file that cannot be read or does not pass the checker is set aside (renamed `.unreadable`,
 * kept for a human) and named, never trusted.
 */
import { readFileSync, readdirSync, renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ensurePrivateDir, writePrivateFile } from '../../base/state-dir.js';

export interface MigrationRecord {
  migration: string;
}

export class RecordJournal<T extends MigrationRecord> {
  private readonly dir: string;

  /** `parse` returns the record a file's JSON holds, or null when it is not one. */
  constructor(
    stateDir: string,
    subdir: string,
    private readonly parse: (json: unknown) => T | null,
  ) {
    this.dir = join(stateDir, subdir);
  }

  /** Durable before it returns: the file and its directory entry are synced. */
  write(record: T): void {
    ensurePrivateDir(this.dir);
    writePrivateFile(this.pathOf(record.migration), JSON.stringify(record) + '\n', { durable: true });
  }

  remove(migration: string): void {
    try {
      unlinkSync(this.pathOf(migration));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  /** The records an earlier agent left; unreadable ones are set aside and named in `bad`. */
  pending(): { records: T[]; bad: string[] } {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return { records: [], bad: [] };
    }
    const records: T[] = [];
    const bad: string[] = [];
    for (const name of names.filter((n) => n.endsWith('.json'))) {
      const path = join(this.dir, name);
      try {
        const record = this.parse(JSON.parse(readFileSync(path, 'utf8')));
        if (!record || `${record.migration}.json` !== name) throw new Error('not a record of this journal');
        records.push(record);
      } catch {
        bad.push(path);
        try {
          renameSync(path, `${path}.unreadable`); // kept for a human, not read again
        } catch {
          /* gone meanwhile */
        }
      }
    }
    return { records, bad };
  }

  private pathOf(migration: string): string {
    if (!/^[0-9a-f]{1,64}$/.test(migration)) throw new Error(`not a migration id: ${migration}`);
    return join(this.dir, `${migration}.json`);
  }
}
