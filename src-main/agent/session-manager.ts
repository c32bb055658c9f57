/**
 * The agent's sessions: creating them (in a pod when the native runtime is there), restoring
 * them from images, finding them by reference, forgetting them, and telling watchers about
 * every change.
 *
 * With the runtime, every session's program runs under a terminal host of its own and outlives
 * the agent; its record (`<state>/sessions/ID.json`) lets the next agent find it again (`adopt`).
 * A session whose host is gone (its pod was killed, the machine rebooted) but which has an
 * image in the store is kept, with its record, as `recoverable` (recovery.ts brings it back).
 */
import { createReadStream, readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Readable } from 'node:stream';
import { VosError } from '../api/errors.js';
import { describeExit } from '../api/session-text.js';
import { DEFAULT_SEND_FILES_UP_TO, type ApiEvent, type CheckpointResult, type CreateSessionParams, type PeerRef, type SessionInfo, type SessionShape } from '../api/protocol.js';
import { shortId } from '../base/ids.js';
import { ensurePrivateDir, writePrivateFile } from '../base/state-dir.js';
import { checkpointToFile, checkpointToStore } from './runtime/checkpoint.js';
import { IncomingFiles } from './migration/incoming-files.js';
import { markAsIs, missingHere, refusalDetails, takenAsIsNote } from './migration/preflight.js';
import { ImageStore, type StoredImage } from './store/image-store.js';
import { readSessionRecord, type SessionRecord } from './runtime/session-record.js';
import { runtimeFiles, verifyImage } from './runtime/native.js';
import { feedImageSocket } from './runtime/image-socket.js';
import { podRequest } from './runtime/pod-control.js';
import { listenForRestoreStatus, type RestoreStatus } from './runtime/restore-status.js';
import { replyError, type RestoreOutcome } from './runtime/status-line.js';
import { DEFAULT_COLS, DEFAULT_ROWS, Session, type PtyLaunch, type SessionFileRecord } from './session/session.js';
import { HostGoneError, HostTerminal } from './session/terminal-host.js';
import { latestGoodImages, recoverableInfo, recoverSession } from './recovery.js';
import { checkWorkingDirectory, resolveCommand } from './session/spawn-check.js';

/** What a streamed image's session is, known before its SESSION record arrives. */
export type StreamedSessionSpec = SessionShape & {
  /** For messages: where the image comes from ("the image from alpha"). */
  label: string;
  /** The id it had where it came from: kept unless taken here. */
  id?: string;
  /** For the restorer: where its relayed connections reach this agent (relay/relay-endpoint.ts). */
  restoreEnv?: Record<string, string>;
  /** Told how many bytes of its memory were in memory as they arrived and moved into place. */
  onPlaced?: (bytes: number) => void;
};

export type SessionListEvent = Extract<ApiEvent, { event: 'session.added' | 'session.changed' | 'session.removed' | 'session.moved' }>;

export interface SessionDefaults {
  cwd: string;
  env: Record<string, string>;
  /** The agent's state directory: pods' sockets, images and the file cache live under it. */
  stateDir: string;
  agentName: string;
}

const RESTORE_TIMEOUT_MS = 120_000;
/** How long a restorer's status line may trail its exit (both arrive, in either order). */
const STATUS_AFTER_EXIT_MS = 2_000;
/** How long adopting a program may take (it stops each of its processes for a moment). */
const ADOPT_TIMEOUT_MS = 10_000;

export class SessionManager {
  private readonly sessions = new Map<string, Session>();
  private readonly listeners = new Set<(e: SessionListEvent) => void>();
  private store: ImageStore | null = null;
  /** Sessions whose program is gone but which have an image in the store, by id (their records). */
  private readonly recoverable = new Map<string, SessionFileRecord>();
  /** Recoverable sessions being recovered now. */
  private readonly recovering = new Set<string>();
  /** The checkpoint or migration under way per session (see `occupy`). */
  private readonly operations = new Map<string, { what: string; done: Promise<void> }>();

  /**
   * Why this machine does not let sessions have a pod, with the fix (the agent's probe at start,
   * host-probe.ts), or null: new sessions then start without one, and cannot be checkpointed or
   * moved.
   */
  private noPods: string | null = null;

  constructor(private readonly defaults: SessionDefaults) {}

  /** What the agent's probe found (null: pods can be made). */
  setNoPods(reason: string | null): void {
    this.noPods = reason;
  }

  /** The image store (`<state>/images`), opened (and swept of what a crash left) on first use. */
  get images(): ImageStore {
    this.store ??= new ImageStore(join(this.defaults.stateDir, 'images')).open();
    return this.store;
  }

  create(params: CreateSessionParams): Session {
    const cwd = params.cwd ?? this.defaults.cwd;
    const env = params.env ?? this.defaults.env;
    checkWorkingDirectory(cwd);
    const program = resolveCommand(params.command, cwd, env.PATH);
    const id = this.newId();
    const controlPath = this.podSocket(id);
    const runtime = runtimeFiles();
    const args = params.args ?? [];
    const inPod = runtime !== null && controlPath !== null && this.noPods === null;
    const launch: PtyLaunch =
      runtime && controlPath
        ? inPod
          ? { file: runtime.init, args: ['launch', '--control', controlPath, '--runtime', runtime.library, '--', program, ...args] }
          : { file: runtime.init, args: ['launch', '--no-pod', '--', program, ...args] }
        : { file: program, args };
    return this.add(
      new Session({
        id,
        name: params.name?.trim() || basename(params.command),
        command: params.command,
        args,
        cwd,
        env,
        cols: params.cols ?? DEFAULT_COLS,
        rows: params.rows ?? DEFAULT_ROWS,
        launch,
        controlPath: inPod ? controlPath : null,
        ...(runtime && this.noPods !== null ? { noPodReason: this.noPods } : {}),
        host: this.hostFor(id),
      }),
    );
  }

  /**
   * A new session from an image file or an image of the store; resolves once every process of
   * it runs again. A store image's kept files are put back first where they are missing (and
   * removed again if the restore fails); one that is there with other content refuses the restore,
   * unless it is among `takeAsIs` (the user's word: the program uses it as it is here).
   */
  async restore(source: { file: string } | { image: string }, name?: string, options: { id?: string; takeAsIs?: string[] } = {}): Promise<Session> {
    const runtime = runtimeFiles();
    if (!runtime) throw new VosError('unavailable', 'the vOS runtime is not built (run npm run build)');
    const stored = 'image' in source ? this.images.get(source.image) : this.images.byFile(source.file);
    const file = stored ? stored.info.file : (source as { file: string }).file;
    if (stored?.info.problem) {
      throw new VosError('bad_image', `cannot restore image ${stored.info.id}: ${stored.info.problem}`, { path: stored.info.file });
    }
    // An incremental image: its parents, nearest first (the restorer checks each whole).
    const parents = stored ? this.images.parentFiles(stored.info.id) : [];
    // The restorer checks the whole image before it restores anything (a damaged one is refused
    // with its reason below); the agent only reads its own record here. Without one, the full
    // check tells the user what is wrong with the file.
    let record: SessionRecord;
    try {
      record = readSessionRecord(file);
    } catch (err) {
      await verifyImage(runtime.init, file);
      throw err;
    }
    // A recovered session asks for its old id: it gets it unless a live session has it.
    const id = options.id !== undefined && !this.sessions.has(options.id) ? options.id : this.newId();
    const controlPath = this.podSocket(id);
    if (!controlPath) throw new VosError('restore_failed', 'the state directory path is too long for a pod socket');
    const statusPath = controlPath.replace(/\.sock$/, '.status');
    if (!stored && options.takeAsIs?.length) {
      throw new VosError('invalid_params', `${file} is not an image of the store: only those check the files the session needs, so there is nothing to take as is`);
    }
    const kept = stored ? await this.putKeptFiles(stored, id, options.takeAsIs) : null;
    const files = kept?.files ?? null;
    let status: RestoreStatus;
    try {
      status = await listenForRestoreStatus(statusPath);
    } catch (err) {
      await files?.removeAll();
      throw err;
    }
    let restored = false;
    try {
      const session = this.add(
        new Session({
          id,
          name: name?.trim() || record.name,
          command: record.command,
          args: record.args,
          cwd: record.cwd,
          env: this.defaults.env,
          cols: record.cols,
          rows: record.rows,
          launch: {
            file: runtime.init,
            args: [
              'restore',
              '--control',
              controlPath,
              '--status',
              statusPath,
              '--image',
              file,
              ...parents.flatMap((p) => ['--parent', p]),
              '--cache',
              this.cacheDir(),
            ],
            cwd: this.defaults.stateDir,
          },
          controlPath,
          initialScreen: record.snapshot,
          restoredFrom: file,
          host: this.hostFor(id),
        }),
      );
      await this.awaitRestored(session, status, file);
      if (kept && (kept.takenAsIs.length || kept.askedAsIs.length)) session.addRestoreNote(takenAsIsNote(kept.takenAsIs, kept.askedAsIs));
      restored = true;
      return session;
    } finally {
      status.close();
      if (!restored) await files?.removeAll();
    }
  }

  /**
   * Adopts the program process `pid` runs on another terminal, with the rest of its terminal
   * session (a shell and its jobs), onto a new session's terminal: `vos-init adopt` is the
   * session's program, switches the terminal over inside the program's processes
   * (runtime/init/adopt.c) and then stands in for it as the pod init of a pod outside namespaces
   * (its checkpoints stop every process from outside, and restore into an ordinary pod).
   * Resolves once they are switched over; a
   * refusal (another user's process, ptrace forbidden...) or failure leaves nothing behind.
   */
  async adoptProgram(pid: number, name?: string): Promise<Session> {
    const runtime = runtimeFiles();
    if (!runtime) throw new VosError('unavailable', 'the vOS runtime is not built (run npm run build)');
    const id = this.newId();
    const controlPath = this.podSocket(id);
    if (!controlPath) throw new VosError('spawn_failed', 'the state directory path is too long for a status socket');
    const statusPath = controlPath.replace(/\.sock$/, '.status');
    let comm: string;
    try {
      comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      throw new VosError('invalid_params', `there is no process ${pid}`);
    }
    const status = await listenForRestoreStatus(statusPath);
    let timer: NodeJS.Timeout | undefined;
    try {
      const session = this.add(
        new Session({
          id,
          name: name?.trim() || comm,
          command: comm,
          args: [],
          cwd: this.defaults.cwd,
          env: this.defaults.env,
          cols: DEFAULT_COLS,
          rows: DEFAULT_ROWS,
          launch: { file: runtime.init, args: ['adopt', '--pid', String(pid), '--status', statusPath, '--id', id, '--control', controlPath], cwd: this.defaults.stateDir },
          controlPath,
          host: this.hostFor(id),
        }),
      );
      try {
        await Promise.race([
          status.outcome,
          session.whenExited().then(async () => {
            await Promise.race([status.settled, new Promise((r) => setTimeout(r, STATUS_AFTER_EXIT_MS).unref())]);
            throw new VosError('spawn_failed', `it ended without saying why (${describeExit(session.info().exit)})`);
          }),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new VosError('timeout', `it was not taken over within ${ADOPT_TIMEOUT_MS / 1000} s`)), ADOPT_TIMEOUT_MS);
          }),
        ]);
      } catch (err) {
        await this.remove(session.id, true);
        const why = err instanceof VosError ? err : new VosError('spawn_failed', String(err));
        throw new VosError(why.code === 'restore_failed' ? 'spawn_failed' : why.code, `cannot adopt process ${pid}: ${why.message}`, why.details);
      }
      return session;
    } finally {
      clearTimeout(timer);
      status.close();
    }
  }

  /**
   * Puts a store image's kept files back where they are missing, from the store's blobs (each
   * checked against its SHA-256 on the way, never replacing anything). A file that is there
   * with other content refuses the restore, by name, as a migration does.
   */
  private async putKeptFiles(
    stored: StoredImage,
    restoreId: string,
    takeAsIs?: string[],
  ): Promise<{ files: IncomingFiles; takenAsIs: string[]; askedAsIs: string[] }> {
    // This user's own image: no budget (the store holds what it kept).
    const checked = await missingHere([], markAsIs(stored.files, takeAsIs), Infinity, undefined, Infinity);
    const { problems, wanted, takenAsIs, askedAsIs } = checked;
    if (problems.length > 0) {
      throw new VosError('restore_failed', `cannot restore image ${stored.info.id}: it needs its kept files as they were at the checkpoint: ${problems.join('; ')}`, {
        path: stored.files.find((f) => problems.some((p) => p.startsWith(f.path)))?.path ?? stored.info.file,
        ...refusalDetails(checked),
      });
    }
    const files = new IncomingFiles(`restore-${restoreId}`, wanted);
    for (const f of wanted) files.accept(f.path, createReadStream(this.images.blobPath(f.hash)));
    try {
      await files.all();
    } catch (err) {
      await files.removeAll();
      const why = err instanceof VosError ? err.message : String(err);
      throw new VosError('restore_failed', `cannot restore image ${stored.info.id}: ${why.replace(/^cannot put/, 'cannot put back')}`);
    }
    return { files, takenAsIs, askedAsIs };
  }

  /**
   * A new session from an image that arrives as a stream (a migration): the restorer receives it
   * on a Unix socket next to the pod's (into memory), checks it whole and restores it. The saved
   * screen is read from the stream as it passes. Resolves once every process is restored and
   * *held* at the barrier: `release` lets it run, `discard` ends it. On any failure (the stream
   * breaks, the image is damaged, the restore fails) nothing is left.
   */
  async receive(spec: StreamedSessionSpec, image: Readable): Promise<Session> {
    const runtime = runtimeFiles();
    if (!runtime) throw new VosError('unavailable', 'the vOS runtime is not built here (run npm run build)');
    const id = spec.id !== undefined && !this.sessions.has(spec.id) && !this.recoverable.has(spec.id) ? spec.id : this.newId();
    const controlPath = this.podSocket(id);
    if (!controlPath) throw new VosError('restore_failed', 'the state directory path is too long for a pod socket');
    const imageSocket = controlPath.replace(/\.sock$/, '.image');
    const statusPath = controlPath.replace(/\.sock$/, '.status');
    const feeding = await feedImageSocket(imageSocket, image);
    let status: RestoreStatus;
    try {
      status = await listenForRestoreStatus(statusPath);
    } catch (err) {
      feeding.abort();
      throw err;
    }
    let session: Session;
    try {
      session = this.add(
        new Session({
          id,
          name: spec.name,
          command: spec.command,
          args: spec.args,
          cwd: spec.cwd,
          env: { ...this.defaults.env, ...spec.restoreEnv },
          cols: spec.cols,
          rows: spec.rows,
          launch: {
            file: runtime.init,
            args: [
              'restore',
              '--control',
              controlPath,
              '--status',
              statusPath,
              '--image-socket',
              imageSocket,
              '--hold',
              '--cache',
              this.cacheDir(),
            ],
            cwd: this.defaults.stateDir,
          },
          controlPath,
          host: this.hostFor(id),
        }),
      );
    } catch (err) {
      feeding.abort();
      status.close();
      throw err;
    }
    feeding.onSessionRecord((record) => session.primeScreen(record.snapshot));
    try {
      const outcome = await this.awaitRestored(session, status, spec.label, feeding.failure);
      spec.onPlaced?.(outcome.placed);
    } finally {
      feeding.abort();
      status.close();
    }
    return session;
  }

  /** Lets a held session (see `receive`) run. */
  async release(session: Session): Promise<void> {
    const reply = await podRequest(session.controlPath!, 'go', 10_000);
    if (!reply.startsWith('ok')) {
      const why = replyError(reply, 'restore_failed') ?? new VosError('restore_failed', reply);
      throw VosError.wrap('restore_failed', `the restored session would not start: ${why.message}`, why);
    }
  }

  /** Ends a held session and forgets it. */
  async discard(session: Session): Promise<void> {
    await podRequest(session.controlPath!, 'abort', 5_000).catch(() => undefined);
    if (this.sessions.get(session.id) === session) await this.remove(session.id, true);
  }

  private cacheDir(): string {
    const cache = join(this.defaults.stateDir, 'cache');
    ensurePrivateDir(cache);
    return cache;
  }

  /**
   * Waits for the restorer's status line (restore-status.ts); on failure removes the session and
   * says why, with the restorer's code, file and record. A restorer that ends without a line
   * (killed, crashed) is described by its exit, never by what is on its screen.
   */
  private async awaitRestored(session: Session, status: RestoreStatus, label: string, streamFailure?: Promise<string>): Promise<RestoreOutcome> {
    let timer: NodeJS.Timeout | undefined;
    let outcome: RestoreOutcome;
    try {
      outcome = await Promise.race([
        status.outcome,
        session.whenExited().then(async () => {
          await Promise.race([status.settled, new Promise((r) => setTimeout(r, STATUS_AFTER_EXIT_MS).unref())]);
          throw new VosError('restore_failed', `the restorer ended without saying why (${describeExit(session.info().exit)})`);
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new VosError('restore_failed', `the restorer did not finish within ${RESTORE_TIMEOUT_MS / 1000} s`, { cause: 'timeout' })),
            RESTORE_TIMEOUT_MS,
          );
        }),
        ...(streamFailure ? [streamFailure.then((why): never => { throw new VosError('restore_failed', why); })] : []),
      ]);
    } catch (err) {
      await this.remove(session.id, true);
      const why = err instanceof VosError ? err : new VosError('restore_failed', String(err));
      throw new VosError(why.code, `cannot restore ${label}: ${why.message}`, why.details);
    } finally {
      clearTimeout(timer);
    }
    const notes: string[] = [];
    if (outcome.clocks === 'jumped') {
      notes.push(
        'its monotonic clocks jumped: the machine it came from booted at another time, and this kernel has no time namespaces to hide that (timers and timeouts running in it may fire early or late)',
      );
    }
    // The restorer's notes each say what became of something (dropped, came back disconnected,
    // rebound elsewhere): not all of them are about what was lost.
    if (outcome.note) notes.push(outcome.note);
    if (notes.length) session.noteRestore(notes.join('; '));
    return outcome;
  }

  /**
   * An image of a running session: into `out`, or into the store (a manual image; `keep`: the
   * session's images beyond the newest that many are removed after a successful checkpoint).
   */
  async checkpoint(
    ref: string,
    out: string | undefined,
    stop: boolean,
    keep?: number,
    incremental = false,
    onPrewarning?: (warning: string) => void,
  ): Promise<CheckpointResult> {
    const session = this.resolve(ref);
    if (!session.running) throw new VosError('session_exited', `session ${session.id} has ended: nothing to checkpoint`);
    const release = await this.occupy(session.id, 'a manual checkpoint');
    let result: CheckpointResult;
    try {
      if (!session.running) throw new VosError('session_exited', `session ${session.id} has ended: nothing to checkpoint`);
      result = out
        ? await checkpointToFile(session, out, stop, this.defaults.agentName, onPrewarning)
        : await checkpointToStore(session, this.images, {
            kind: 'manual',
            stop,
            incremental,
            ...(keep !== undefined ? { keep } : {}),
            keepFilesUpTo: DEFAULT_SEND_FILES_UP_TO,
            agentName: this.defaults.agentName,
            ...(onPrewarning ? { onPrewarning } : {}),
          });
    } finally {
      release();
    }
    if (stop) await session.whenExited();
    return result;
  }

  /**
   * A scheduled checkpoint into the store (incremental where the store can), keeping the
   * session's newest `keep` images. The caller checks `busyWith` first: a scheduled run never
   * waits behind another checkpoint or a migration of the session.
   */
  async checkpointScheduled(id: string, keep: number): Promise<CheckpointResult> {
    const session = this.resolve(id);
    if (!session.running) throw new VosError('session_exited', `session ${session.id} has ended: nothing to checkpoint`);
    const release = await this.occupy(session.id, 'a scheduled checkpoint');
    try {
      return await checkpointToStore(session, this.images, {
        kind: 'scheduled',
        stop: false,
        keep,
        incremental: true,
        keepFilesUpTo: DEFAULT_SEND_FILES_UP_TO,
        agentName: this.defaults.agentName,
      });
    } finally {
      release();
    }
  }

  /** What checkpoints or moves the session right now ("a manual checkpoint", "a migration"), or null. */
  busyWith(id: string): string | null {
    return this.operations.get(id)?.what ?? null;
  }

  /**
   * Makes `what` the one checkpoint or migration of the session under way, after waiting for
   * any other to end (never two at once: each freezes the pod). Call the result when done.
   */
  async occupy(id: string, what: string): Promise<() => void> {
    for (let op = this.operations.get(id); op; op = this.operations.get(id)) await op.done;
    let release!: () => void;
    const done = new Promise<void>((resolve) => (release = resolve));
    this.operations.set(id, { what, done });
    return () => {
      if (this.operations.get(id)?.done === done) this.operations.delete(id);
      release();
    };
  }

  /** The sessions, oldest first: live ones and recoverable ones (with their latest good image). */
  list(): SessionInfo[] {
    const live = [...this.sessions.values()].map((s) => s.info());
    const latest = this.recoverable.size > 0 ? latestGoodImages(this.images) : new Map();
    const gone = [...this.recoverable.values()].map((r) => recoverableInfo(r, latest.get(r.id)));
    return [...live, ...gone].sort((a, b) => a.startedAt - b.startedAt);
  }

  /** The live sessions (not the recoverable ones), oldest first. */
  liveSessions(): Session[] {
    return [...this.sessions.values()].sort((a, b) => a.startedAt - b.startedAt);
  }

  /** Finds a live session by id, unique id prefix, or exact name; a recoverable one is refused, saying so. */
  resolve(ref: string): Session {
    const found = this.find(ref);
    if (found instanceof Session) return found;
    throw new VosError(
      'session_exited',
      `session ${found.id} (${found.name}) is recoverable, not running: its program is gone; 'vos recover ${found.id}' brings it back from its latest image`,
    );
  }

  /** A live or recoverable session by id, unique id prefix, or exact name. */
  private find(ref: string): Session | SessionFileRecord {
    const exact = this.sessions.get(ref) ?? this.recoverable.get(ref);
    if (exact) return exact;
    const matches = [...this.sessions.values(), ...this.recoverable.values()].filter((s) => s.id.startsWith(ref) || s.name === ref);
    if (matches.length === 1) return matches[0]!;
    if (matches.length === 0) {
      throw new VosError('unknown_session', `no session "${ref}" (see 'vos ls' for the sessions of this agent)`);
    }
    const names = matches.map((s) => `${s.id} (${s.name})`).join(', ');
    throw new VosError('ambiguous_session', `"${ref}" matches several sessions: ${names}; give more of the id`);
  }

  /**
   * Brings back a recoverable session (`ref`) or all of them, each from its latest good image
   * (recovery.ts). With `all`, every one is tried; if any could not be recovered the call fails
   * afterwards, naming each with why (the others are back).
   */
  async recover(target: { ref: string; takeAsIs?: string[] } | { all: true }): Promise<Session[]> {
    if ('ref' in target) {
      const found = this.find(target.ref);
      if (found instanceof Session) {
        throw new VosError(
          found.running ? 'session_running' : 'session_exited',
          found.running
            ? `session ${found.id} (${found.name}) is running: there is nothing to recover`
            : `session ${found.id} (${found.name}) ended by itself, so it is not recoverable; its images (vos images ${found.id}) can still be restored with vos restore IMAGE`,
        );
      }
      return [await this.recoverOne(found, target.takeAsIs)];
    }
    const back: Session[] = [];
    const failed: string[] = [];
    let code: VosError['code'] | null = null;
    for (const record of [...this.recoverable.values()]) {
      try {
        back.push(await this.recoverOne(record));
      } catch (err) {
        const e = err instanceof VosError ? err : new VosError('restore_failed', String(err));
        code ??= e.code;
        failed.push(e.message);
      }
    }
    if (failed.length > 0) {
      const done = back.length > 0 ? `recovered ${back.map((s) => `${s.id} (${s.name})`).join(', ')}; ` : '';
      throw new VosError(code ?? 'restore_failed', `${done}${failed.join('; ')}`);
    }
    return back;
  }

  /** `takeAsIs`: kept files the program may use as they are here (see restore). */
  private async recoverOne(record: SessionFileRecord, takeAsIs?: string[]): Promise<Session> {
    if (this.recovering.has(record.id)) {
      throw new VosError('session_running', `session ${record.id} (${record.name}) is being recovered already`);
    }
    this.recovering.add(record.id);
    try {
      const session = await recoverSession(record, this.images, {
        restore: (image) => this.restore({ image }, record.name, { id: record.id, ...(takeAsIs ? { takeAsIs } : {}) }),
        // A failed attempt removed the session it made (and, with the same id, the record):
        // the session is recoverable again.
        stillRecoverable: () => {
          if (this.recoverable.has(record.id) || this.sessions.has(record.id)) return;
          this.recoverable.set(record.id, record);
          this.writeRecordFile(record);
          this.emit({ event: 'session.added', session: recoverableInfo(record, latestGoodImages(this.images).get(record.id)) });
        },
      });
      if (session.id !== record.id && this.recoverable.delete(record.id)) {
        // Its id was taken: the old entry goes (its record with it, if no live session has that id).
        if (!this.sessions.has(record.id)) this.forgetRecord(record.id);
        this.emit({ event: 'session.removed', id: record.id });
      }
      return session;
    } finally {
      this.recovering.delete(record.id);
    }
  }

  /**
   * Forgets a session: a live one (refused while it runs unless `force`, which ends it) or a
   * recoverable one (its images stay in the store).
   */
  async remove(ref: string, force: boolean): Promise<string> {
    const found = this.find(ref);
    if (!(found instanceof Session)) {
      if (this.recovering.has(found.id)) throw new VosError('session_running', `session ${found.id} is being recovered; remove it once that is done`);
      this.recoverable.delete(found.id);
      this.forgetRecord(found.id);
      this.emit({ event: 'session.removed', id: found.id });
      return found.id;
    }
    const session = found;
    if (session.running && !force) {
      throw new VosError('session_running', `session ${session.id} is still running; kill it first or remove it with --force`);
    }
    this.sessions.delete(session.id);
    this.forgetRecord(session.id);
    this.emit({ event: 'session.removed', id: session.id });
    await session.dispose(force ? 0 : undefined);
    return session.id;
  }

  /** The session now runs on another machine as `to`: watchers are told, and it is forgotten here. */
  moved(id: string, to: string, peer: PeerRef): void {
    const session = this.sessions.get(id);
    if (!session) return;
    this.sessions.delete(id);
    this.forgetRecord(id);
    this.emit({ event: 'session.moved', id, to, peer });
    this.emit({ event: 'session.removed', id });
    void session.dispose(0);
  }

  onEvent(listener: (e: SessionListEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Ends every session (hangup, then kill after the grace period). The records of
   * `keepRecordsOf` stay (sessions checkpointed just before: the next agent lists them as
   * recoverable); the others are forgotten.
   */
  async disposeAll(graceMs = 2000, keepRecordsOf: ReadonlySet<string> = new Set()): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) if (!keepRecordsOf.has(s.id)) this.forgetRecord(s.id);
    await Promise.all(all.map((s) => s.dispose(graceMs)));
  }

  /**
   * The agent stops: sessions under a terminal host keep running (the next agent adopts them);
   * those on a pty of the agent's own (no runtime) end, as they would anyway.
   */
  async letGoAll(graceMs = 2000): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(
      all.map((s) => {
        if (!s.outlivesAgent) return s.dispose(graceMs);
        s.letGo();
        return undefined;
      }),
    );
  }

  /**
   * Finds the sessions an earlier agent of this state directory left running: each record's
   * terminal host is asked for the program's state and its journal (the screen and scrollback).
   * Resolves once every record has been looked at.
   */
  async adopt(log: (message: string) => void): Promise<void> {
    const dir = this.recordDir();
    let names: string[];
    try {
      names = readdirSync(dir).filter((n) => n.endsWith('.json'));
    } catch {
      return; // no sessions directory: nothing was ever left running
    }
    await Promise.all(names.map((n) => this.adoptOne(join(dir, n), log)));
  }

  private async adoptOne(file: string, log: (message: string) => void): Promise<void> {
    let record: SessionFileRecord;
    try {
      record = parseSessionFile(readFileSync(file, 'utf8'));
    } catch (err) {
      log(`cannot read the session record ${file} (left alone): ${(err as Error).message}`);
      return;
    }
    if (this.sessions.has(record.id) || !record.hostSocket) return;
    let adopted: Awaited<ReturnType<typeof HostTerminal.adopt>>;
    try {
      adopted = await HostTerminal.adopt(record.hostSocket);
    } catch (err) {
      // Its host is gone (the pod was killed, the machine rebooted): recoverable when the store
      // has a good image of it; the record stays, so the next agent lists it too.
      const latest = err instanceof HostGoneError ? latestGoodImages(this.images).get(record.id) : undefined;
      if (latest) {
        this.recoverable.set(record.id, record);
        log(`session ${record.id} (${record.name}) is gone (its terminal host is not there any more); recoverable from image ${latest.id} of ${new Date(latest.time).toISOString()}: vos recover ${record.id}`);
        return;
      }
      rmSync(file, { force: true });
      const why = err instanceof HostGoneError ? 'and the image store has no good image of it' : `(${(err as Error).message})`;
      log(`session ${record.id} (${record.name}) is gone ${why}; forgot it`);
      return;
    }
    const session = new Session({
      id: record.id,
      name: record.name,
      command: record.command,
      args: record.args,
      cwd: record.cwd,
      env: this.defaults.env,
      cols: record.cols,
      rows: record.rows,
      launch: { file: '', args: [] },
      controlPath: record.controlPath,
      ...(record.controlPath === null && this.noPods !== null ? { noPodReason: this.noPods } : {}),
      ...(record.restoredFrom ? { restoredFrom: record.restoredFrom } : {}),
      adopted: { terminal: adopted.terminal, socket: record.hostSocket, startedAt: record.startedAt, restoreNote: record.restoreNote },
    });
    this.add(session);
    log(`session ${record.id} (${record.name}) found again: ${adopted.hello.exit ? 'it has ended' : `running, pid ${adopted.hello.childPid}`}`);
  }

  private recordDir(): string {
    return join(this.defaults.stateDir, 'sessions');
  }

  private writeRecord(session: Session): void {
    this.writeRecordFile(session.record());
  }

  private writeRecordFile(record: SessionFileRecord): void {
    ensurePrivateDir(this.recordDir());
    writePrivateFile(join(this.recordDir(), `${record.id}.json`), JSON.stringify(record, null, 2) + '\n');
  }

  private forgetRecord(id: string): void {
    rmSync(join(this.recordDir(), `${id}.json`), { force: true });
  }

  /** The terminal host for a new session, or null (no runtime, or a state path too long). */
  private hostFor(id: string): { init: string; socket: string } | null {
    const runtime = runtimeFiles();
    const control = this.podSocket(id);
    if (!runtime || !control) return null;
    return { init: runtime.init, socket: control.replace(/\.sock$/, '.term') };
  }

  private newId(): string {
    let id = shortId();
    while (this.sessions.has(id) || this.recoverable.has(id)) id = shortId();
    return id;
  }

  /**
   * The control socket of a session's pod, or null when its path would be too long. A restore's
   * sockets sit beside it (ID.image, ID.status): the longest name counts.
   */
  private podSocket(id: string): string | null {
    const dir = join(this.defaults.stateDir, 'pods');
    const path = join(dir, `${id}.sock`);
    if (Buffer.byteLength(join(dir, `${id}.status`)) > 107) return null;
    ensurePrivateDir(dir);
    return path;
  }

  private add(session: Session): Session {
    // A recovered session takes its old id: for watchers the recoverable one changed.
    const wasRecoverable = this.recoverable.delete(session.id);
    this.sessions.set(session.id, session);
    if (session.outlivesAgent) {
      this.writeRecord(session);
      session.onRecordChange = (s) => {
        if (this.sessions.get(s.id) === s) this.writeRecord(s);
      };
    }
    session.onChange = (s) => {
      if (this.sessions.get(s.id) === s) this.emit({ event: 'session.changed', session: s.info() });
    };
    this.emit({ event: wasRecoverable ? 'session.changed' : 'session.added', session: session.info() });
    return session;
  }

  private emit(e: SessionListEvent): void {
    for (const l of this.listeners) l(e);
  }
}

/** A session record as written by `writeRecord`; throws on anything else. */
function parseSessionFile(text: string): SessionFileRecord {
  const r = JSON.parse(text) as Partial<Record<keyof SessionFileRecord, unknown>>;
  const str = (v: unknown): v is string => typeof v === 'string';
  const strOrNull = (v: unknown): boolean => v === null || typeof v === 'string';
  const dim = (v: unknown): boolean => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535;
  if (
    !str(r.id) ||
    !/^[A-Za-z0-9_-]+$/.test(r.id) ||
    !str(r.name) ||
    !str(r.command) ||
    !Array.isArray(r.args) ||
    !r.args.every(str) ||
    !str(r.cwd) ||
    typeof r.startedAt !== 'number' ||
    !strOrNull(r.controlPath) ||
    !strOrNull(r.hostSocket) ||
    !dim(r.cols) ||
    !dim(r.rows) ||
    !strOrNull(r.restoredFrom) ||
    !strOrNull(r.restoreNote)
  ) {
    throw new Error('not a session record');
  }
  return r as SessionFileRecord;
}
