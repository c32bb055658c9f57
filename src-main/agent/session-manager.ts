/**
 * The agent's sessions: creating them (in a pod when the native runtime is there), restoring
 * them from images, finding them by reference, forgetting them, and telling watchers about
 * every change.
 *
 * With the runtime, every session's program runs under a terminal host of its own and outlives
 * the agent; its record (`<state>/sessions/ID.json`) lets the next agent find it again (`adopt`).
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
import { missingHere } from './migration/preflight.js';
import { ImageStore, type StoredImage } from './store/image-store.js';
import { readSessionRecord, type SessionRecord } from './runtime/session-record.js';
import { runtimeFiles, verifyImage } from './runtime/native.js';
import { feedImageSocket } from './runtime/image-socket.js';
import { podRequest } from './runtime/pod-control.js';
import { listenForRestoreStatus, type RestoreStatus } from './runtime/restore-status.js';
import { replyError, type RestoreOutcome } from './runtime/status-line.js';
import { DEFAULT_COLS, DEFAULT_ROWS, Session, type PtyLaunch, type SessionFileRecord } from './session/session.js';
import { HostTerminal } from './session/terminal-host.js';
import { checkWorkingDirectory, resolveCommand } from './session/spawn-check.js';

/** What a streamed image's session is, known before its SESSION record arrives. */
export type StreamedSessionSpec = SessionShape & {
  /** For messages: where the image comes from ("the image from alpha"). */
  label: string;
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

export class SessionManager {
  private readonly sessions = new Map<string, Session>();
  private readonly listeners = new Set<(e: SessionListEvent) => void>();
  private store: ImageStore | null = null;
  /** The checkpoint or migration under way per session (see `occupy`). */
  private readonly operations = new Map<string, { what: string; done: Promise<void> }>();

  constructor(private readonly defaults: SessionDefaults) {}

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
    const launch: PtyLaunch =
      runtime && controlPath
        ? { file: runtime.init, args: ['launch', '--control', controlPath, '--runtime', runtime.library, '--', program, ...args] }
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
        controlPath: runtime ? controlPath : null,
        host: this.hostFor(id),
      }),
    );
  }

  /**
   * A new session from an image file or an image of the store; resolves once every process of
   * it runs again. A store image's kept files are put back first where they are missing (and
   * removed again if the restore fails); one that is there with other content refuses the restore.
   */
  async restore(source: { file: string } | { image: string }, name?: string): Promise<Session> {
    const runtime = runtimeFiles();
    if (!runtime) throw new VosError('unavailable', 'the vOS runtime is not built (run npm run build)');
    const stored = 'image' in source ? this.images.get(source.image) : this.images.byFile(source.file);
    const file = stored ? stored.info.file : (source as { file: string }).file;
    if (stored?.info.problem) {
      throw new VosError('bad_image', `cannot restore image ${stored.info.id}: ${stored.info.problem}`, { path: stored.info.file });
    }
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
    const id = this.newId();
    const controlPath = this.podSocket(id);
    if (!controlPath) throw new VosError('restore_failed', 'the state directory path is too long for a pod socket');
    const statusPath = controlPath.replace(/\.sock$/, '.status');
    const files = stored ? await this.putKeptFiles(stored, id) : null;
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
            args: ['restore', '--control', controlPath, '--status', statusPath, '--image', file, '--cache', this.cacheDir()],
            cwd: this.defaults.stateDir,
          },
          controlPath,
          initialScreen: record.snapshot,
          restoredFrom: file,
          host: this.hostFor(id),
        }),
      );
      await this.awaitRestored(session, status, file);
      restored = true;
      return session;
    } finally {
      status.close();
      if (!restored) await files?.removeAll();
    }
  }

  /**
   * Puts a store image's kept files back where they are missing, from the store's blobs (each
   * checked against its SHA-256 on the way, never replacing anything). A file that is there
   * with other content refuses the restore, by name, as a migration does.
   */
  private async putKeptFiles(stored: StoredImage, restoreId: string): Promise<IncomingFiles> {
    const { problems, wanted } = missingHere([], stored.files, Infinity);
    if (problems.length > 0) {
      throw new VosError('restore_failed', `cannot restore image ${stored.info.id}: ${problems.join('; ')} (the image needs the file as it was at the checkpoint)`, {
        path: stored.files.find((f) => problems.some((p) => p.startsWith(f.path)))?.path ?? stored.info.file,
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
    return files;
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
    const id = this.newId();
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
          env: this.defaults.env,
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
      await this.awaitRestored(session, status, spec.label, feeding.failure);
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
  private async awaitRestored(session: Session, status: RestoreStatus, label: string, streamFailure?: Promise<string>): Promise<void> {
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
    if (outcome.clocks === 'jumped') {
      session.noteRestore(
        'its monotonic clocks jumped: the machine it came from booted at another time, and this kernel has no time namespaces to hide that (timers and timeouts running in it may fire early or late)',
      );
    }
  }

  /**
   * An image of a running session: into `out`, or into the store (a manual image; `keep`: the
   * session's images beyond the newest that many are removed after a successful checkpoint).
   */
  async checkpoint(ref: string, out: string | undefined, stop: boolean, keep?: number): Promise<CheckpointResult> {
    const session = this.resolve(ref);
    if (!session.running) throw new VosError('session_exited', `session ${session.id} has ended: nothing to checkpoint`);
    const release = await this.occupy(session.id, 'a manual checkpoint');
    let result: CheckpointResult;
    try {
      if (!session.running) throw new VosError('session_exited', `session ${session.id} has ended: nothing to checkpoint`);
      result = out
        ? await checkpointToFile(session, out, stop, this.defaults.agentName)
        : await checkpointToStore(session, this.images, {
            kind: 'manual',
            stop,
            ...(keep !== undefined ? { keep } : {}),
            keepFilesUpTo: DEFAULT_SEND_FILES_UP_TO,
            agentName: this.defaults.agentName,
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

  list(): SessionInfo[] {
    return [...this.sessions.values()].sort((a, b) => a.startedAt - b.startedAt).map((s) => s.info());
  }

  /** Finds a session by id, unique id prefix, or exact name. */
  resolve(ref: string): Session {
    const exact = this.sessions.get(ref);
    if (exact) return exact;
    const matches = [...this.sessions.values()].filter((s) => s.id.startsWith(ref) || s.name === ref);
    if (matches.length === 1) return matches[0]!;
    if (matches.length === 0) {
      throw new VosError('unknown_session', `no session "${ref}" (see 'vos ls' for the sessions of this agent)`);
    }
    const names = matches.map((s) => `${s.id} (${s.name})`).join(', ');
    throw new VosError('ambiguous_session', `"${ref}" matches several sessions: ${names}; give more of the id`);
  }

  async remove(ref: string, force: boolean): Promise<string> {
    const session = this.resolve(ref);
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

  /** Ends every session (hangup, then kill after the grace period). */
  async disposeAll(graceMs = 2000): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) this.forgetRecord(s.id);
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
      // TODO(issue 9, recovery): a session whose host is gone (the machine rebooted, someone
      // killed it) should be listed as "recoverable" from its last checkpoint; for now it is
      // forgotten.
      rmSync(file, { force: true });
      log(`session ${record.id} (${record.name}) is gone (${(err as Error).message}); forgot it`);
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
    ensurePrivateDir(this.recordDir());
    writePrivateFile(join(this.recordDir(), `${session.id}.json`), JSON.stringify(session.record(), null, 2) + '\n');
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
    while (this.sessions.has(id)) id = shortId();
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
    this.emit({ event: 'session.added', session: session.info() });
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
