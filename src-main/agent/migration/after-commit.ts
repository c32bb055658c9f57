/**
 * The steps of a migration after its decision is on disk, the same for a move in progress and
 * for one an earlier agent here committed to and did not see confirmed (it was killed between
 * ending the original and the target's "go"): the original ends (the point of no return), then
 * the target is told to go until it confirms or the copy's hold time has passed. Nothing of the
 * move is undone after the original ended: a failure to reach the target is answered by asking
 * again, in the background once nobody waits any more.
 */
import { VosError, describeError } from '../../api/errors.js';
import type { ApiClient } from '../../api/client.js';
import type { PeerRef, SessionInfo } from '../../api/protocol.js';
import type { Community } from '../community/community.js';
import { GO_BACKGROUND_EVERY_MS, GO_RETRY_MS } from '../community/link-timing.js';
import type { Session } from '../session/session.js';
import type { SessionManager } from '../session-manager.js';
import type { CommitJournal, CommitRecord } from './commit-journal.js';
import type { Step } from './transaction.js';

/** "go" is asked in the background for as long as the target holds the copy (its pod's hold time). */
const GO_BACKGROUND_MS = 10 * 60_000;

/** A committed move, as its post-commit steps see it. */
export interface Committed {
  record: CommitRecord;
  /** Ends the original: the held pod told to commit, or (after a restart) its processes killed. */
  endOriginal(): Promise<void> | void;
  /** The original and the migration's channel while a caller waits for the move; null after a restart. */
  waiting: { session: Session; client: ApiClient } | null;
  /** The copy, once the target confirmed while the caller waited. */
  moved: SessionInfo | null;
}

export class AfterCommit {
  constructor(
    private readonly community: Community,
    private readonly sessions: SessionManager,
    private readonly journal: CommitJournal,
    private readonly log: (message: string) => void,
  ) {}

  /** `committed`: read as the steps run (a move in progress knows it once its decision is on disk). */
  steps(committed: () => Committed): Step[] {
    return [
      { name: 'ending the original', run: () => committed().endOriginal(), final: true },
      { name: 'telling the target to go', run: () => this.go(committed()) },
    ];
  }

  /** The record of a move, no longer needed; a failure to remove it is logged, never thrown. */
  forget(migration: string): void {
    try {
      this.journal.remove(migration);
    } catch (err) {
      this.log(`migration ${migration}: cannot remove its record: ${describeError(err)}`);
    }
  }

  /** Viewers follow the session to its new home; here it is forgotten. */
  handOver(session: Session, to: string, peer: PeerRef): void {
    session.notifyViewers({ t: 'event', event: 'session.moved', id: session.id, to, peer });
    this.sessions.moved(session.id, to, peer);
  }

  /**
   * The original is gone: the copy must run. With a caller waiting, asked at once and then
   * again every second while the link comes back (a lost answer must not lose the session);
   * after GO_RETRY_MS the caller hears that it is not confirmed yet, and keepAskingGo goes on.
   * After a restart nobody waits: keepAskingGo alone.
   */
  private async go(c: Committed): Promise<void> {
    const { record, waiting } = c;
    const { migration, peer } = record;
    if (!waiting) {
      this.keepAskingGo(record, null);
      return;
    }
    const pause = pauseAfterCommitForTests();
    if (pause > 0) await new Promise((r) => setTimeout(r, pause));
    try {
      c.moved = await this.askWhileWaited(waiting.client, migration, peer);
    } catch (err) {
      waiting.session.departing(false); // ended here, unconfirmed there: say so, as an exit
      if (err instanceof VosError && err.code === 'unknown_session') {
        this.forget(migration);
        throw VosError.wrap('migration_failed', `the session ended here, and ${peer.name} no longer holds its copy: ${err.message}`, err);
      }
      this.keepAskingGo(record, waiting.session);
      throw err;
    }
    this.forget(migration);
  }

  private async askWhileWaited(client: ApiClient, migration: string, peer: PeerRef): Promise<SessionInfo> {
    try {
      return await client.request('migration.go', { migration });
    } catch (err) {
      if (err instanceof VosError && err.code === 'unknown_session') throw err;
      this.log(`migration ${migration}: telling ${peer.name} to go failed (${describeError(err)}); asking again`);
      const answer = await this.askGoUntil(peer.id, migration, Date.now() + GO_RETRY_MS, 1000);
      if (answer instanceof VosError) throw answer;
      if (answer) return answer;
      throw VosError.wrap(
        'migration_failed',
        `the session ended here, and ${peer.name} has not confirmed yet that it runs there (the link is down); vOS keeps asking for ${GO_BACKGROUND_MS / 60_000} minutes: check 'vos ls --all'`,
        err,
      );
    }
  }

  /**
   * One "go" over a fresh channel: the copy's info; null if the peer cannot be reached (yet);
   * the error if it answered that it holds no such copy (asking again would not help).
   */
  private async askGo(peerId: string, migration: string): Promise<SessionInfo | VosError | null> {
    try {
      const again = this.community.channelsFor(peerId).openClient('vos-migration');
      try {
        await again.ready();
        return await again.request('migration.go', { migration });
      } finally {
        again.close();
      }
    } catch (err) {
      return err instanceof VosError && err.code === 'unknown_session' ? err : null;
    }
  }

  /** askGo every `everyMs` until the time `until`: the first answer, or null if none came. */
  private async askGoUntil(peerId: string, migration: string, until: number, everyMs: number): Promise<SessionInfo | VosError | null> {
    while (Date.now() < until) {
      await new Promise((r) => setTimeout(r, everyMs).unref());
      const answer = await this.askGo(peerId, migration);
      if (answer) return answer;
    }
    return null;
  }

  /**
   * The target holds the copy until it hears "go" (or its hold time ends): keep telling it in
   * the background, and forget the record once it answered. `session`: the original's viewers
   * here follow the copy (null after a restart: nobody is attached to it here any more). A
   * record past the copy's hold time is forgotten at once.
   */
  private keepAskingGo(record: CommitRecord, session: Session | null): void {
    const { migration, peer } = record;
    void this.askGoUntil(peer.id, migration, record.committedAt + GO_BACKGROUND_MS, GO_BACKGROUND_EVERY_MS).then((answer) => {
      this.forget(migration);
      if (answer instanceof VosError) {
        this.log(`migration ${migration}: ${peer.name} holds no copy of session ${record.session.id} any more: ${answer.message}`);
      } else if (answer) {
        this.log(`migration ${migration}: ${peer.name} confirmed late; session ${record.session.id} runs there as ${answer.id}`);
        if (session) this.handOver(session, `${answer.id}@${peer.id}`, peer);
      } else {
        this.log(`migration ${migration}: ${peer.name} never confirmed; its held copy has ended by now`);
      }
    });
  }
}

/**
 * Test hook: VOS_TEST_PAUSE_AFTER_COMMIT_MS holds the migration between ending the original and
 * telling the target to go, so the tests can cut the link (or kill an agent) in exactly that
 * window. 0 normally. Safe in shipped builds: it is read from the agent's own environment, which
 * only the user who starts the agent sets (no peer or client can), and it only delays a step the
 * move already survives (a link lost there: "go" is asked again); it never skips or reorders one.
 */
function pauseAfterCommitForTests(): number {
  return Number(process.env.VOS_TEST_PAUSE_AFTER_COMMIT_MS ?? 0);
}
