/**
 * The target's record of a copy it holds for a migration (restored, at the barrier, waiting for
 * the source's "go" or "abort"): written (synced) before `migration.result` answers, removed
 * once the copy runs, is ended, or ends by itself. An agent killed in between finds the record
 * when it starts again, next to the held session it adopts (sessions outlive their agent), and
 * takes the copy back into its receiver, so the source's "go" (which it keeps asking after its
 * commit) still lets it run — instead of `unknown_session`, and the copy ending with its hold time
 * while the original has ended too.
 *
 * One small JSON file per migration in `<state>/held/`; one that cannot be read is set aside.
 */
import { readFileSync, readdirSync, renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { MigrationOffer } from '../../api/protocol.js';
import { ensurePrivateDir, writePrivateFile } from '../../base/state-dir.js';

export interface HeldRecord {
  migration: string;
  /** The source: only it may say "go" or "abort". */
  peer: { id: string; name: string };
  /** The held copy, a session of this agent. */
  session: string;
  offer: MigrationOffer;
  heldAt: number;
}

export class HeldJournal {
  private readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'held');
  }

  /** Durable before it returns. */
  write(record: HeldRecord): void {
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

  /** The records an earlier agent left; unreadable ones are set aside (renamed) and named in `bad`. */
  pending(): { records: HeldRecord[]; bad: string[] } {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return { records: [], bad: [] };
    }
    const records: HeldRecord[] = [];
    const bad: string[] = [];
    for (const name of names.filter((n) => n.endsWith('.json'))) {
      const path = join(this.dir, name);
      try {
        const r = JSON.parse(readFileSync(path, 'utf8')) as Partial<HeldRecord> | null;
        const ok =
          r !== null &&
          typeof r === 'object' &&
          typeof r.migration === 'string' &&
          `${r.migration}.json` === name &&
          typeof r.peer?.id === 'string' &&
          typeof r.peer?.name === 'string' &&
          typeof r.session === 'string' &&
          typeof r.offer === 'object' &&
          r.offer !== null &&
          typeof r.heldAt === 'number';
        if (!ok) throw new Error('not a held-copy record');
        records.push(r as HeldRecord);
      } catch {
        bad.push(path);
        try {
          renameSync(path, `${path}.unreadable`);
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
