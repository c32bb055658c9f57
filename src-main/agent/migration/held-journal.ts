/**
 * The target's record of a copy it holds for a migration (restored, at the barrier, waiting for
 * the source's "go" or "abort"): written (synced) before `migration.result` answers, removed
 * once the copy runs, is ended, or ends by itself. An agent killed in between finds the record
 * when it starts again, next to the held session it adopts (sessions outlive their agent), and
 * takes the copy back into its receiver, so the source's "go" (which it keeps asking after its
 * commit) still lets it run — instead of `unknown_session`, and the copy ending with its hold time
 * while the original has ended too.
 *
 * One small JSON file per migration in `<state>/held/` (record-journal.ts).
 */
import type { MigrationOffer } from '../../api/protocol.js';
import { RecordJournal } from './record-journal.js';

export interface HeldRecord {
  migration: string;
  /** The source: only it may say "go" or "abort". */
  peer: { id: string; name: string };
  /** The held copy, a session of this agent. */
  session: string;
  offer: MigrationOffer;
  heldAt: number;
}

export class HeldJournal extends RecordJournal<HeldRecord> {
  constructor(stateDir: string) {
    super(stateDir, 'held', parseHeldRecord);
  }
}

function parseHeldRecord(json: unknown): HeldRecord | null {
  const r = json as Partial<HeldRecord> | null;
  const ok =
    r !== null &&
    typeof r === 'object' &&
    typeof r.migration === 'string' &&
    typeof r.peer?.id === 'string' &&
    typeof r.peer?.name === 'string' &&
    typeof r.session === 'string' &&
    typeof r.offer === 'object' &&
    r.offer !== null &&
    typeof r.heldAt === 'number';
  return ok ? (r as HeldRecord) : null;
}
