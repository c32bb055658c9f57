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
 * Each of these is a step with what takes it back (transaction.ts runs and unwinds them): until
 * the original ends any failure — the link cut, the target gone or refusing, a damaged image, a
 * timeout — resumes the original exactly where it was, the target is told the move is off, and
 * the error says why (`migration_failed`, the cause's code in `details.cause`). The session never
 * runs in two places: the target's copy waits at the barrier until the original has ended. The
 * steps after that (after-commit.ts) ask "go" until the target confirms; an agent restarted here
 * takes them up from its records.
 */
import { createReadStream, statSync } from 'node:fs';
import { arch } from 'node:os';
import { pipeline } from 'node:stream/promises';
import { VosError, describeError, type ErrorDetails } from '../../api/errors.js';
import type { ApiClient } from '../../api/client.js';
import type { FileNeed, MigrationMode, MigrationPhase, MigrationResult, PeerRef, SessionInfo } from '../../api/protocol.js';
import type { Community } from '../community/community.js';
import type { Session } from '../session/session.js';
import type { SessionManager } from '../session-manager.js';
import { processStartTime, processTree } from '../../base/process-tree.js';
import { AfterCommit, type Committed } from './after-commit.js';
import { CommitJournal, type CommitRecord } from './commit-journal.js';
import { checkpointHeld, type HeldCheckpoint } from './held-checkpoint.js';
import { sessionListeners } from './listeners.js';
import { sessionLockedFiles } from './locks.js';
import { sessionInodeBoundFiles } from './inode-bound.js';
import { offeredOnly, sessionMappedFiles } from './mapped-files.js';
import { fileHashAsync, markAsIs, sessionNeeds, type SessionNeeds } from './preflight.js';
import { runSteps, type Step } from './transaction.js';
import type { Anchor } from '../relay/anchor.js';
import type { RelayHub } from '../relay/relay-hub.js';
import { withTimeout } from '../../base/with-timeout.js';

const PROGRESS_EVERY_MS = 100;
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

/** How a move goes: see the session.migrate request. */
export interface MoveOptions {
  mode: MigrationMode;
  sendFilesUpTo: number;
  /** Open files the target may have with other content: the session uses them as they are there. */
  takeAsIs?: string[];
  /** Carry every mapped file's content, even where the target has the file alike (the retry of a
   * move whose target's file turned out different). */
  carryMappedFiles?: boolean;
}

/** A move whose target's restore failed on a mapped file left to the target's copy (mapped-files.ts). */
class LeftToTarget extends Error {
  constructor(override readonly cause: VosError) {
    super(cause.message);
  }
}

/** One migration from here, as its steps learn it. */
class Move {
  total = 0;
  migration = '';
  needs: SessionNeeds = { dirs: [], files: [], rssBytes: 0 };
  /** The open files the target asked for, sent along. */
  wanted: string[] = [];
  /** The mapped files the target has alike: left out of the image (mapped-files.ts). */
  mappedThere: string[] = [];
  /** The target's answer once it restored the image (asked before the image is sent). */
  restored: Promise<SessionInfo> | null = null;
  held: HeldCheckpoint | null = null;
  /** Its connections to outside the pod, kept here once it ends (none: null). */
  anchor: Anchor | null = null;
  /** The held pod was told to end: letting it run again is no longer an undo. */
  decided = false;
  /** Set once the decision is on disk: what the steps after the commit work with. */
  committed: Committed | null = null;
  private client: ApiClient | null = null;
  // A progress event per chunk of the image would cost more than the chunk: 'copying' and
  // 'sending' are reported at most every PROGRESS_EVERY_MS (and on a change of phase), every
  // other phase as it comes.
  private lastStreaming = 0;
  private lastPhase: MigrationPhase | null = null;

  constructor(
    readonly session: Session,
    readonly target: PeerRef,
    readonly options: MoveOptions,
    private readonly progress: (p: MigrationProgress) => void,
  ) {}

  report(phase: MigrationPhase, sent: number, detail: string | null = null): void {
    if ((phase === 'sending' || phase === 'copying') && phase === this.lastPhase) {
      const now = Date.now();
      if (now - this.lastStreaming < PROGRESS_EVERY_MS) return;
      this.lastStreaming = now;
    }
    this.lastPhase = phase;
    this.progress({ phase, sent, total: this.total, detail });
  }

  /**
   * Something the move will not carry (a connection to another machine), said before the
   * session stops: a progress event of the phase at hand whose detail starts with "warning: ",
   * never held back as frequent progress is.
   */
  warn(warning: string): void {
    this.progress({ phase: this.lastPhase ?? 'checking', sent: 0, total: this.total, detail: `warning: ${warning}` });
  }

  /** The error a caller sees: the session stays, why, and the code of what caused it. */
  fail(why: string, cause?: unknown, details: ErrorDetails = {}): VosError {
    const message = `${this.session.name} (${this.session.id}) stays here: ${why}`;
    const wrapped = VosError.wrap('migration_failed', message, cause);
    // A cause that is itself a failed migration (a file the target could not put in place) adds
    // only what it names; its code would say nothing more than ours.
    const { cause: code, ...rest } = wrapped.details;
    return new VosError('migration_failed', message, { ...rest, ...(code === 'migration_failed' ? {} : { cause: code }), ...details });
  }

  /** The migration's API channel to the target, opened by the offer. */
  openChannel(community: Community): ApiClient {
    return (this.client = community.channelsFor(this.target.id).openClient('vos-migration'));
  }

  channel(): ApiClient {
    if (!this.client) throw new Error('the migration has no channel to the target yet');
    return this.client;
  }

  close(): void {
    this.client?.close();
  }
}

export class Migrator {
  private readonly moving = new Set<string>();
  private readonly journal: CommitJournal;
  private readonly after: AfterCommit;

  constructor(
    private readonly sessions: SessionManager,
    private readonly community: Community,
    private readonly agentName: string,
    stateDir: string,
    private readonly log: (message: string) => void,
    private readonly relays: RelayHub,
  ) {
    this.journal = new CommitJournal(stateDir);
    this.after = new AfterCommit(community, sessions, this.journal, log);
  }

  /**
   * Finishes the moves an earlier agent here committed to but did not see confirmed (it was
   * killed between ending the original and the target's "go"): the same steps as after a
   * commit here, with the original's processes killed (if they still run) as its end.
   */
  recover(): void {
    const { records, bad } = this.journal.pending();
    for (const path of bad) this.log(`migration record ${path} cannot be read; set aside as ${path}.unreadable`);
    for (const record of records) {
      const { migration, peer, session } = record;
      this.log(`migration ${migration}: finishing the move of session ${session.name} (${session.id}) to ${peer.name}, begun by an earlier agent here`);
      const committed: Committed = { record, endOriginal: () => endOriginal(record.original), waiting: null, moved: null };
      void runSteps(this.after.steps(() => committed), (m) => this.log(`migration ${migration}: ${m}`)).catch((err: unknown) =>
        this.log(`migration ${migration}: ${describeError(err)}`),
      );
    }
  }

  async migrate(
    ref: string,
    peerRef: string,
    options: MoveOptions,
    progress: (p: MigrationProgress) => void,
  ): Promise<MigrationResult> {
    try {
      return await this.migrateOnce(ref, peerRef, options, progress);
    } catch (err) {
      // The target's restore failed on a mapped file left to its copy: that one differs after all
      // (same size and mtime, other content). The session runs on here; once more, carrying them all.
      if (!(err instanceof LeftToTarget)) throw err;
      this.log(`migration of ${ref}: the restore there failed on a file left to its copy (${describeError(err.cause)}); moving again with the files' content`);
      return await this.migrateOnce(ref, peerRef, { ...options, carryMappedFiles: true }, progress);
    }
  }

  private async migrateOnce(
    ref: string,
    peerRef: string,
    options: MoveOptions,
    progress: (p: MigrationProgress) => void,
  ): Promise<MigrationResult> {
    const started = Date.now();
    const session = this.sessions.resolve(ref);
    if (!session.running) throw new VosError('session_exited', `session ${session.id} has ended: nothing to move`);
    if (!session.controlPath) throw new VosError('unsupported', `session ${session.id} cannot be checkpointed or moved: ${session.noPodReason}`);
    if (this.moving.has(session.id)) throw new VosError('migration_failed', `session ${session.id} is moving already`);
    const target = this.community.resolve(peerRef);
    const m = new Move(session, { id: target.id, name: target.name }, options, progress);
    this.moving.add(session.id);
    let release: (() => void) | null = null;
    try {
      // Not while a checkpoint of it is under way (a scheduled one ends within seconds).
      release = await this.sessions.occupy(session.id, 'a migration');
      await runSteps(
        [...this.stepsBeforeCommit(m), ...this.after.steps(() => m.committed!)],
        (message) => this.log(`migration ${m.migration || `of ${session.id}`}: ${message}`),
      );
      const held = m.held!;
      const moved = m.committed!.moved!;
      const downtimeMs = Date.now() - held.frozenAt;
      const to = `${moved.id}@${target.id}`;
      this.log(`session ${session.id} moved to ${target.name} as ${moved.id} (${held.bytes} bytes, ${downtimeMs} ms stopped)`);
      this.after.handOver(session, to, m.target);
      m.report('done', held.bytes);
      return {
        from: session.id,
        session: { ...moved, id: to, peer: m.target },
        bytes: held.bytes,
        downtimeMs,
        wallMs: Date.now() - started,
        mode: held.rounds > 0 ? 'live' : 'stop-and-copy',
        rounds: held.rounds,
        fallback: held.fallback,
        filesSent: m.wanted,
        relayed: m.anchor?.what ?? [],
      };
    } catch (err) {
      const failure = err instanceof VosError && err.code === 'migration_failed' ? err : m.fail(describeError(err), err);
      // Only a restore that failed on a file left to the target is made again (with the content).
      const path = failure.details.path;
      if (path !== undefined && m.mappedThere.includes(path) && failure.details.cause === 'restore_failed' && !m.decided) throw new LeftToTarget(failure);
      m.report('failed', 0, describeError(err));
      throw failure;
    } finally {
      release?.();
      this.moving.delete(session.id);
      m.close();
    }
  }

  /**
   * The steps up to the commit, each with what takes it back. The target is told the migration
   * is off by the offer's undo: that ends a copy it holds and removes the files sent along.
   */
  private stepsBeforeCommit(m: Move): Step[] {
    return [
      { name: 'the offer', run: () => this.offer(m), undo: () => this.callOff(m) },
      { name: 'the files sent along', run: () => this.sendAlong(m) },
      { name: 'the held original', run: () => this.checkpoint(m), undo: () => this.resume(m) },
      // Its connections to outside: the target's relay streams find them from now on.
      { name: 'the kept connections', run: () => this.keepConnections(m), undo: () => m.anchor?.discard() },
      { name: 'the check of the files sent along', run: () => this.checkSentFiles(m) },
      { name: 'the restore there', run: () => this.awaitRestore(m) },
      { name: 'the record on disk', run: () => this.record(m), undo: () => this.after.forget(m.migration) },
      // Its end here is the move, not an exit.
      { name: 'the departure', run: () => m.session.departing(true), undo: () => m.session.departing(false) },
    ];
  }

  /** 1. checking: the target hears what the session needs, and says which open files it lacks. */
  private async offer(m: Move): Promise<void> {
    m.report('checking', 0);
    const client = m.openChannel(this.community);
    await client.ready();
    m.needs = await sessionNeeds(m.session.pid);
    m.needs.files = markAsIs(m.needs.files, m.options.takeAsIs);
    m.total = m.needs.rssBytes;
    const { name, command, args, cwd, cols, rows } = m.session.info();
    const mappedFiles = m.options.carryMappedFiles ? [] : sessionMappedFiles(m.session.pid);
    try {
      let mappedHere: unknown;
      ({ migration: m.migration, wanted: m.wanted, mappedHere } = await client.request('migration.offer', {
        id: m.session.id,
        name,
        command,
        args,
        cwd,
        cols,
        rows,
        dirs: m.needs.dirs,
        files: m.needs.files,
        bytes: m.total,
        arch: arch(),
        sendUpTo: m.options.sendFilesUpTo,
        listeners: sessionListeners(m.session.pid),
        locks: sessionLockedFiles(m.session.pid),
        inodeBound: sessionInodeBoundFiles(m.session.pid),
        ...(mappedFiles.length ? { mappedFiles } : {}),
      }));
      m.mappedThere = offeredOnly(mappedHere, mappedFiles);
    } catch (err) {
      throw m.fail(`${m.target.name} refuses it: ${describeError(err)}`, err);
    }
  }

  /** The open files the target lacks, sent along; it answers once all are in place there. */
  private async sendAlong(m: Move): Promise<void> {
    const { wanted } = m;
    if (wanted.length === 0) return;
    m.report('checking', 0, `sending ${wanted.length} open file${wanted.length === 1 ? '' : 's'} it lacks`);
    try {
      await this.sendFiles(m.target.id, m.migration, wanted, m.needs.files.map((f) => f.path));
      await m.channel().request('migration.files', { migration: m.migration });
    } catch (err) {
      throw m.fail(`its open files could not be sent along: ${describeError(err)}`, err);
    }
  }

  /** 2. (live: copying while it runs, then) freezing and sending; the original stays frozen. */
  private async checkpoint(m: Move): Promise<void> {
    const live = m.options.mode === 'live';
    m.report(live ? 'copying' : 'freezing', 0);
    const stream = this.community.openStream(m.target.id, { migration: m.migration });
    m.restored = m.channel().request('migration.result', { migration: m.migration });
    m.restored.catch(() => {}); // awaited by the restore step; a failure before that is reported by the stream
    try {
      m.held = await checkpointHeld(m.session, stream, this.agentName, {
        live,
        filesThere: m.mappedThere,
        onBytes: (sent, frozen) => m.report(frozen ? 'sending' : 'copying', sent),
        onPrewarning: (warning) => m.warn(warning),
      });
    } catch (err) {
      stream.destroy(err as Error);
      throw m.fail(describeError(err), err);
    }
    m.total = m.held.bytes;
  }

  /**
   * The held pod handed its connections to outside it to the helper, which keeps them once the
   * pod ends (the commit) and relays them to the program there; nothing reads them before.
   */
  private keepConnections(m: Move): void {
    const held = m.held!;
    if (held.relayed.size === 0 || !held.relay) return;
    m.anchor = this.relays.anchor(m.migration, m.target, held.relay, held.relayed);
    this.log(`migration ${m.migration}: keeping ${m.anchor.what.join('; ')} open here, relayed to ${m.target.name}`);
  }

  /** The original runs again exactly where it was (unless it was told to end). */
  private async resume(m: Move): Promise<void> {
    if (m.decided || !m.held) return;
    try {
      await m.held.finish(false);
    } catch (err) {
      throw new Error(`cannot resume ${m.session.id}: ${describeError(err)}`);
    }
  }

  /**
   * A file sent along must not have changed since (the session wrote it meanwhile): the copy
   * there would miss the change. The pod is frozen now; nothing writes it any more.
   */
  private async checkSentFiles(m: Move): Promise<void> {
    const changed = await sentFilesChanged(m.wanted, m.needs.files);
    if (changed) throw m.fail(`${changed} changed while it moved (the session wrote it); try again`, undefined, { path: changed });
  }

  /** 3. restoring, there; the original waits here, frozen. */
  private async awaitRestore(m: Move): Promise<void> {
    const { target } = m;
    m.report('restoring', m.held!.bytes);
    try {
      await withTimeout(m.restored!, RESTORE_TIMEOUT_MS, `${target.name} did not restore it within ${RESTORE_TIMEOUT_MS / 1000} s`);
    } catch (err) {
      throw m.fail(`${target.name} could not restore it: ${describeError(err)}`, err);
    }
  }

  /** 4. switching: the decision on disk (a partial record is removed again). */
  private record(m: Move): void {
    m.report('switching', m.held!.bytes);
    const { session } = m;
    const record: CommitRecord = {
      migration: m.migration,
      peer: m.target,
      session: { id: session.id, name: session.name },
      original: { pid: session.pid, startTime: processStartTime(session.pid) },
      committedAt: Date.now(),
    };
    try {
      this.journal.write(record);
    } catch (err) {
      this.after.forget(m.migration);
      throw m.fail(`the move cannot be recorded on this machine's disk: ${describeError(err)}`, err);
    }
    m.committed = { record, endOriginal: () => this.commit(m), waiting: { session, client: m.channel() }, moved: null };
  }

  /** The original ends: the point of no return. */
  private async commit(m: Move): Promise<void> {
    m.decided = true;
    try {
      await m.held!.finish(true);
    } catch (err) {
      throw m.fail(`the original could not be ended: ${describeError(err)}`, err);
    }
    m.anchor?.committed(); // its kept connections are relayed from now on (and chains made straight)
  }

  /**
   * Tells the target the migration is off (it ends a held copy and removes files sent along);
   * waited for, within reason, so it is sent before the channel closes. Never throws.
   */
  private async callOff(m: Move): Promise<void> {
    const { migration, target } = m;
    try {
      await withTimeout(m.channel().request('migration.abort', { migration }), ABORT_TIMEOUT_MS, `${target.name} did not answer`);
    } catch (err) {
      this.log(`migration ${migration}: calling it off on ${target.name}: ${describeError(err)} (its held copy ends by itself)`);
    }
  }

  /** The files the target asked for (only ones this session has open), a link stream each. */
  private async sendFiles(peerId: string, migration: string, wanted: string[], open: string[]): Promise<void> {
    for (const path of wanted) {
      if (!open.includes(path)) throw new VosError('migration_failed', `the target asked for ${path}, which the session does not have open`, { path });
      const stream = this.community.openStream(peerId, { migration, file: path });
      try {
        await pipeline(createReadStream(path), stream);
      } catch (err) {
        stream.destroy(err as Error);
        throw new VosError('migration_failed', `sending ${path}: ${describeError(err)}`, { path });
      }
    }
  }
}

/** The first of the files sent along whose content is not what was sent, or null. */
async function sentFilesChanged(sent: string[], files: FileNeed[]): Promise<string | null> {
  for (const path of sent) {
    const f = files.find((x) => x.path === path);
    try {
      const size = statSync(path).size;
      if (!f || size !== f.size || (await fileHashAsync(path, size)) !== f.hash) return path;
    } catch {
      return path;
    }
  }
  return null;
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
