/**
 * The source's record of a migration it decided to complete: written (and synced to disk) once
 * the target holds a restored copy, before the original is ended, and removed once the target
 * confirms that the copy runs. An agent that dies in between (killed, the machine rebooted)
 * finds the record when it starts again and finishes the move: it makes sure the original is
 * gone and keeps telling the target to go — the copy there would otherwise end with its hold
 * time, and with it the only copy of the session.
 *
 * One small JSON file per migration in `<state>/migrations/` (record-journal.ts).
 */
import type { PeerRef } from '../../api/protocol.js';
import { RecordJournal } from './record-journal.js';

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

export class CommitJournal extends RecordJournal<CommitRecord> {
  constructor(stateDir: string) {
    super(stateDir, 'migrations', parseCommitRecord);
  }
}

function parseCommitRecord(json: unknown): CommitRecord | null {
  const r = json as Partial<CommitRecord> | null;
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
