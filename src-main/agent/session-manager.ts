/**
 * The agent's sessions: creating them (in a pod when the native runtime is there), restoring
 * them from images, finding them by reference, forgetting them, and telling watchers about
 * every change.
 */
import { mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Readable } from 'node:stream';
import { VosError } from '../api/errors.js';
import { describeExit } from '../api/session-text.js';
import type { ApiEvent, CheckpointResult, CreateSessionParams, PeerRef, SessionInfo, SessionShape } from '../api/protocol.js';
import { shortId } from '../base/ids.js';
import { ensurePrivateDir } from '../base/state-dir.js';
import { checkpointSession } from './runtime/checkpoint.js';
import { readSessionRecord, type SessionRecord } from './runtime/session-record.js';
import { runtimeFiles, verifyImage } from './runtime/native.js';
import { feedImageSocket } from './runtime/image-socket.js';
import { podRequest } from './runtime/pod-control.js';
import { listenForRestoreStatus, type RestoreStatus } from './runtime/restore-status.js';
import { replyError, type RestoreOutcome } from './runtime/status-line.js';
import { DEFAULT_COLS, DEFAULT_ROWS, Session, type PtyLaunch } from './session/session.js';
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

  constructor(private readonly defaults: SessionDefaults) {}

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
      }),
    );
  }

  /** A new session from an image; resolves once every process of it runs again. */
  async restore(file: string, name?: string): Promise<Session> {
    const runtime = runtimeFiles();
    if (!runtime) throw new VosError('unavailable', 'the vOS runtime is not built (run npm run build)');
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
    const status = await listenForRestoreStatus(statusPath);
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
        }),
      );
      await this.awaitRestored(session, status, file);
      return session;
    } finally {
      status.close();
    }
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

  async checkpoint(ref: string, out: string | undefined, stop: boolean): Promise<CheckpointResult> {
    const session = this.resolve(ref);
    if (!session.running) throw new VosError('session_exited', `session ${session.id} has ended: nothing to checkpoint`);
    const file = out ?? this.defaultImagePath(session);
    const result = await checkpointSession(session, file, stop, this.defaults.agentName);
    if (stop) await session.whenExited();
    return result;
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
    this.emit({ event: 'session.removed', id: session.id });
    await session.dispose(force ? 0 : undefined);
    return session.id;
  }

  /** The session now runs on another machine as `to`: watchers are told, and it is forgotten here. */
  moved(id: string, to: string, peer: PeerRef): void {
    const session = this.sessions.get(id);
    if (!session) return;
    this.sessions.delete(id);
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
    await Promise.all(all.map((s) => s.dispose(graceMs)));
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

  private defaultImagePath(session: Session): string {
    const dir = join(this.defaults.stateDir, 'images');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
    const safe = session.name.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 40) || 'session';
    return join(dir, `${safe}-${stamp}-${session.id}.vosimg`);
  }

  private add(session: Session): Session {
    this.sessions.set(session.id, session);
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
