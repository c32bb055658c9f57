/**
 * The source's record of a migration it decided to complete: written (and synced to disk) once
 * the target holds a restored copy, before the original is ended, and removed once the target
 * confirms that the copy runs. An agent that dies in between (killed, the machine rebooted)
 * finds the record when it starts again and finishes the move: it makes sure the original is
 * gone and keeps telling the target to go — the copy there would otherwise end with its hold
 * time, and with it the only copy of the session.
 *
 * One small JSON file per migration in `<state>/migrations/`; a file that cannot be read is
 * reported and set aside, never trusted.
 */
import { readFileSync, readdirSync, renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { PeerRef } from '../../api/protocol.js';
import { ensurePrivateDir, writePrivateFile } from '../../base/state-dir.js';

export interface CommitRecord {
  migration: string;
  peer: PeerRef;
  /** The session here, as the user knew it. */
  session: { id: string; name: string };
  /** The original's first process as the host sees it, with its start time (a pid is reused). */
  original: { pid: number; startTime: string | null };
  /** When the original was (about to be) ended, Date.now(). */
  committedAt: number;
}

export class CommitJournal {
  private readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'migrations');
  }

  /** Durable before it returns: the file and its directory entry are synced. */
  write(record: CommitRecord): void {
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

  /** The records left by an agent that did not finish its moves; unreadable ones are named in `bad`. */
  pending(): { records: CommitRecord[]; bad: string[] } {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return { records: [], bad: [] };
    }
    const records: CommitRecord[] = [];
    const bad: string[] = [];
    for (const name of names.filter((n) => n.endsWith('.json'))) {
      const path = join(this.dir, name);
      try {
        const record = parseRecord(readFileSync(path, 'utf8'));
        if (record && `${record.migration}.json` === name) records.push(record);
        else throw new Error('not a migration record');
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

function parseRecord(text: string): CommitRecord | null {
  const r = JSON.parse(text) as Partial<CommitRecord> | null;
  const ok =
    r !== null &&
    typeof r === 'object' &&
    typeof r.migration === 'string' &&
    typeof r.peer?.id === 'string' &&
    typeof r.peer?.name === 'string' &&
    typeof r.session?.id === 'string' &&
    typeof r.session?.name === 'string' &&
    typeof r.original?.pid === 'number' &&
    (typeof r.original?.startTime === 'string' || r.original?.startTime === null) &&
    typeof r.committedAt === 'number';
  return ok ? (r as CommitRecord) : null;
}
