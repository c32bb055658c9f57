/**
 * The source half of a migration, as one transaction:
 *
 *   1. checking   the target is paired and linked, and has what the session needs
 *                 (working directories, open files, same architecture) — nothing frozen yet;
 *                 open files it lacks, up to a size, are sent along and checked there;
 *   2. copying    (live) the memory goes over while the session runs, in rounds of what it
 *                 wrote since the previous one;
 *      freezing / sending   the pod is frozen and its image (live: what changed since the last
 *                 round) streamed over the link as it is written (flow-controlled: a slow link
 *                 slows the writer);
 *   3. restoring  the target checks the whole image, restores it and holds it at the barrier;
 *   4. switching  the decision is written to disk (CommitJournal), only then the original
 *                 ends here (commit), and the target lets its copy run.
 *
 * Until step 4 any failure — the link cut, the target gone or refusing, a damaged image, a
 * timeout — resumes the original exactly where it was, and the error says why. The session never
 * runs in two places: the target's copy waits at the barrier until the original has ended. After
 * the commit, "go" is asked until the target confirms, also by an agent restarted here.
 */
import { createReadStream, statSync } from 'node:fs';
import { arch } from 'node:os';
import { pipeline } from 'node:stream/promises';
import { VosError, describeError } from '../../api/errors.js';
import type { ApiClient } from '../../api/client.js';
import type { FileNeed, MigrationMode, MigrationPhase, MigrationResult, PeerRef, SessionInfo } from '../../api/protocol.js';
import type { Community } from '../community/community.js';
import type { Session } from '../session/session.js';
import type { SessionManager } from '../session-manager.js';
import { processStartTime, processTree } from '../../base/process-tree.js';
import { CommitJournal, type CommitRecord } from './commit-journal.js';
import { checkpointHeld, type HeldCheckpoint } from './held-checkpoint.js';
import { fileHash, sessionNeeds } from './preflight.js';

const PROGRESS_EVERY_MS = 100;
/** After the original ended, "go" is asked again every second for this long while the caller waits... */
const GO_RETRY_MS = 20_000;
/** ...then in the background for as long as the target holds the copy (its pod's hold time). */
const GO_BACKGROUND_MS = 10 * 60_000;
const GO_BACKGROUND_EVERY_MS = 5_000;
/** The target must have restored the image within this long after it was sent. */
const RESTORE_TIMEOUT_MS = 5 * 60_000;
/** How long calling a migration off waits for the target's answer. */
const ABORT_TIMEOUT_MS = 5_000;

export interface MigrationProgress {
  phase: MigrationPhase;
  sent: number;
  total: number;
  detail: string | null;
}

export class Migrator {
  private readonly moving = new Set<string>();
  private readonly journal: CommitJournal;

  constructor(
    private readonly sessions: SessionManager,
    private readonly community: Community,
    private readonly agentName: string,
    stateDir: string,
    private readonly log: (message: string) => void,
  ) {
    this.journal = new CommitJournal(stateDir);
  }

  /**
   * Finishes the moves an earlier agent here committed to but did not see confirmed (it was
   * killed between ending the original and the target's "go"): the original is made sure to be
   * gone, and the target is told to go until it confirms or its hold time has passed.
   */
  recover(): void {
    const { records, bad } = this.journal.pending();
    for (const path of bad) this.log(`migration record ${path} cannot be read; set aside as ${path}.unreadable`);
    for (const record of records) {
      const { migration, peer, session } = record;
      endOriginal(record.original);
      this.log(`migration ${migration}: finishing the move of session ${session.name} (${session.id}) to ${peer.name}, begun by an earlier agent here`);
      this.keepAskingGo(record, null); // past the copy's hold time: forgotten at once
    }
  }

  async migrate(
    ref: string,
    peerRef: string,
    options: { mode: MigrationMode; sendFilesUpTo: number },
    progress: (p: MigrationProgress) => void,
  ): Promise<MigrationResult> {
    const { mode } = options;
    const started = Date.now();
    const session = this.sessions.resolve(ref);
    if (!session.running) throw new VosError('session_exited', `session ${session.id} has ended: nothing to move`);
    if (!session.controlPath) throw new VosError('migration_failed', `session ${session.id} does not run in a pod (the runtime was not built when it started): it cannot move`);
    if (this.moving.has(session.id)) throw new VosError('migration_failed', `session ${session.id} is moving already`);
    const target = this.community.resolve(peerRef);
    const peer: PeerRef = { id: target.id, name: target.name };
    const fail = (why: string): VosError => new VosError('migration_failed', `${session.name} (${session.id}) stays here: ${why}`);
    this.moving.add(session.id);
    let total = 0;
    // A progress event per chunk of the image would cost more than the chunk: 'copying' and
    // 'sending' are reported at most every PROGRESS_EVERY_MS (and on a change of phase), every
    // other phase as it comes.
    let lastStreaming = 0;
    let lastPhase: MigrationPhase | null = null;
    const report = (phase: MigrationPhase, sent: number, detail: string | null = null): void => {
      if ((phase === 'sending' || phase === 'copying') && phase === lastPhase) {
        const now = Date.now();
        if (now - lastStreaming < PROGRESS_EVERY_MS) return;
        lastStreaming = now;
      }
      lastPhase = phase;
      progress({ phase, sent, total, detail });
    };
    let client: ApiClient | null = null;
    try {
      // 1. checking
      report('checking', 0);
      client = this.community.channelsFor(target.id).openClient('vos-migration');
      await client.ready();
      const needs = sessionNeeds(session.pid);
      total = needs.rssBytes;
      const { name, command, args, cwd, cols, rows } = session.info();
      let migration: string;
      let wanted: string[];
      try {
        ({ migration, wanted } = await client.request('migration.offer', {
          name,
          command,
          args,
          cwd,
          cols,
          rows,
          dirs: needs.dirs,
          files: needs.files,
          bytes: total,
          arch: arch(),
          sendUpTo: options.sendFilesUpTo,
        }));
      } catch (err) {
        throw fail(`${target.name} refuses it: ${describeError(err)}`);
      }
      if (wanted.length > 0) {
        report('checking', 0, `sending ${wanted.length} open file${wanted.length === 1 ? '' : 's'} it lacks`);
        try {
          await this.sendFiles(target.id, migration, wanted, needs.files.map((f) => f.path));
          await client.request('migration.files', { migration });
        } catch (err) {
          await this.callOff(client, migration, target.name);
          throw fail(`its open files could not be sent along: ${describeError(err)}`);
        }
      }

      // 2. (live: copying while it runs, then) freezing and sending
      report(mode === 'live' ? 'copying' : 'freezing', 0);
      const stream = this.community.openStream(target.id, { migration });
      const restored = client.request('migration.result', { migration });
      restored.catch(() => {}); // awaited below; a failure before that is reported by the stream
      let held: HeldCheckpoint;
      try {
        held = await checkpointHeld(session, stream, this.agentName, {
          live: mode === 'live',
          onBytes: (sent, frozen) => report(frozen ? 'sending' : 'copying', sent),
        });
      } catch (err) {
        stream.destroy(err as Error);
        throw fail(describeError(err));
      }
      total = held.bytes;
      // A file sent along must not have changed since (the session wrote it meanwhile): the copy
      // there would miss the change. The pod is frozen now; nothing writes it any more.
      const changed = sentFilesChanged(wanted, needs.files);
      if (changed) {
        await held.finish(false).catch((e: unknown) => this.log(`cannot resume ${session.id}: ${describeError(e)}`));
        await this.callOff(client, migration, target.name);
        throw fail(`${changed} changed while it moved (the session wrote it); try again`);
      }

      // 3. restoring, there; the original waits here, frozen
      report('restoring', held.bytes);
      try {
        await withTimeout(restored, RESTORE_TIMEOUT_MS, `${target.name} did not restore it within ${RESTORE_TIMEOUT_MS / 1000} s`);
      } catch (err) {
        await held.finish(false).catch((e: unknown) => this.log(`cannot resume ${session.id}: ${describeError(e)}`));
        await this.callOff(client, migration, target.name);
        throw fail(`${target.name} could not restore it: ${describeError(err)}`);
      }

      // 4. switching: the decision on disk, the original ends, then the copy runs
      report('switching', held.bytes);
      const record: CommitRecord = {
        migration,
        peer,
        session: { id: session.id, name: session.name },
        original: { pid: session.pid, startTime: processStartTime(session.pid) },
        committedAt: Date.now(),
      };
      try {
        this.journal.write(record);
      } catch (err) {
        this.forget(migration);
        await held.finish(false).catch((e: unknown) => this.log(`cannot resume ${session.id}: ${describeError(e)}`));
        await this.callOff(client, migration, target.name);
        throw fail(`the move cannot be recorded on this machine's disk: ${describeError(err)}`);
      }
      session.departing(true); // its end here is the move, not an exit
      try {
        await held.finish(true);
      } catch (err) {
        session.departing(false);
        this.forget(migration);
        await this.callOff(client, migration, target.name);
        throw fail(`the original could not be ended: ${describeError(err)}`);
      }
      const pause = pauseAfterCommitForTests();
      if (pause > 0) await new Promise((r) => setTimeout(r, pause));
      let moved: SessionInfo;
      try {
        moved = await this.go(client, migration, peer);
      } catch (err) {
        session.departing(false); // ended here, unconfirmed there: say so, as an exit
        if (err instanceof VosError && err.code === 'unknown_session') {
          this.forget(migration);
          throw new VosError('migration_failed', `the session ended here, and ${target.name} no longer holds its copy: ${err.message}`);
        }
        this.keepAskingGo(record, session);
        throw err;
      }
      this.forget(migration);
      const downtimeMs = Date.now() - held.frozenAt;
      const to = `${moved.id}@${target.id}`;
      this.log(`session ${session.id} moved to ${target.name} as ${moved.id} (${held.bytes} bytes, ${downtimeMs} ms stopped)`);
      this.handOver(session, to, peer);
      report('done', held.bytes);
      return {
        from: session.id,
        session: { ...moved, id: to, peer },
        bytes: held.bytes,
        downtimeMs,
        wallMs: Date.now() - started,
        mode: held.rounds > 0 ? 'live' : 'stop-and-copy',
        rounds: held.rounds,
        fallback: held.fallback,
        filesSent: wanted,
      };
    } catch (err) {
      report('failed', 0, describeError(err));
      throw err instanceof VosError && err.code === 'migration_failed' ? err : fail(describeError(err));
    } finally {
      this.moving.delete(session.id);
      client?.close();
    }
  }

  /** The record of a move, no longer needed; a failure to remove it is logged, never thrown. */
  private forget(migration: string): void {
    try {
      this.journal.remove(migration);
    } catch (err) {
      this.log(`migration ${migration}: cannot remove its record: ${describeError(err)}`);
    }
  }

  /**
   * Tells the target the migration is off (it ends a held copy and removes files sent along);
   * waited for, within reason, so it is sent before the channel closes.
   */
  private async callOff(client: ApiClient, migration: string, target: string): Promise<void> {
    try {
      await withTimeout(client.request('migration.abort', { migration }), ABORT_TIMEOUT_MS, `${target} did not answer`);
    } catch (err) {
      this.log(`migration ${migration}: calling it off on ${target}: ${describeError(err)} (its held copy ends by itself)`);
    }
  }

  /** The files the target asked for (only ones this session has open), a link stream each. */
  private async sendFiles(peerId: string, migration: string, wanted: string[], open: string[]): Promise<void> {
    for (const path of wanted) {
      if (!open.includes(path)) throw new VosError('migration_failed', `the target asked for ${path}, which the session does not have open`);
      const stream = this.community.openStream(peerId, { migration, file: path });
      try {
        await pipeline(createReadStream(path), stream);
      } catch (err) {
        stream.destroy(err as Error);
        throw new VosError('migration_failed', `sending ${path}: ${describeError(err)}`);
      }
    }
  }

  /**
   * The original is gone: the copy must run. Asked again every second while the link comes back
   * (a lost answer must not lose the session); after GO_RETRY_MS the caller hears that it is not
   * confirmed yet, and keepAskingGo goes on.
   */
  private async go(client: ApiClient, migration: string, peer: PeerRef): Promise<SessionInfo> {
    try {
      return await client.request('migration.go', { migration });
    } catch (err) {
      if (err instanceof VosError && err.code === 'unknown_session') throw err;
      this.log(`migration ${migration}: telling ${peer.name} to go failed (${describeError(err)}); asking again`);
      const answer = await this.askGoUntil(peer.id, migration, Date.now() + GO_RETRY_MS, 1000);
      if (answer instanceof VosError) throw answer;
      if (answer) return answer;
      throw new VosError(
        'migration_failed',
        `the session ended here, and ${peer.name} has not confirmed yet that it runs there (the link is down); vOS keeps asking for ${GO_BACKGROUND_MS / 60_000} minutes: check 'vos ls --all'`,
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
   * here follow the copy (null after a restart: nobody is attached to it here any more).
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

  /** Viewers follow the session to its new home; here it is forgotten. */
  private handOver(session: Session, to: string, peer: PeerRef): void {
    session.notifyViewers({ t: 'event', event: 'session.moved', id: session.id, to, peer });
    this.sessions.moved(session.id, to, peer);
  }
}

/** The first of the files sent along whose content is not what was sent, or null. */
function sentFilesChanged(sent: string[], files: FileNeed[]): string | null {
  for (const path of sent) {
    const f = files.find((x) => x.path === path);
    try {
      const size = statSync(path).size;
      if (!f || size !== f.size || fileHash(path, size) !== f.hash) return path;
    } catch {
      return path;
    }
  }
  return null;
}

/**
 * Test hook: VOS_TEST_PAUSE_AFTER_COMMIT_MS holds the migration between ending the original and
 * telling the target to go, so the tests can cut the link in exactly that window. 0 normally.
 */
function pauseAfterCommitForTests(): number {
  return Number(process.env.VOS_TEST_PAUSE_AFTER_COMMIT_MS ?? 0);
}

function withTimeout<T>(p: Promise<T>, ms: number, why: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new VosError('timeout', why)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e as Error);
      },
    );
  });
}

/**
 * The original of a committed move, if it still runs (an agent killed while the pod was held):
 * ended, so that the copy is the only one. Matched by pid and start time: a reused pid is left.
 */
function endOriginal(original: CommitRecord['original']): void {
  if (original.startTime === null || processStartTime(original.pid) !== original.startTime) return;
  for (const pid of processTree(original.pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* ended meanwhile */
    }
  }
}
