/**
 * The agent's sessions: creating them (in a pod when the native runtime is there), restoring
 * them from images, finding them by reference, forgetting them, and telling watchers about
 * every change.
 */
import { mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { VosError } from '../api/errors.js';
import type { ApiEvent, CheckpointResult, CreateSessionParams, SessionInfo } from '../api/protocol.js';
import { shortId } from '../base/ids.js';
import { ensurePrivateDir } from '../base/state-dir.js';
import { checkpointSession } from './runtime/checkpoint.js';
import { readSessionRecord, type SessionRecord } from './runtime/image-file.js';
import { runtimeFiles, verifyImage } from './runtime/native.js';
import { podRequestWhenUp } from './runtime/pod-control.js';
import { DEFAULT_COLS, DEFAULT_ROWS, Session, type PtyLaunch } from './session/session.js';
import { checkWorkingDirectory, resolveCommand } from './session/spawn-check.js';

export type SessionListEvent = Extract<ApiEvent, { event: 'session.added' | 'session.changed' | 'session.removed' }>;

export interface SessionDefaults {
  cwd: string;
  env: Record<string, string>;
  /** The agent's state directory: pods' sockets, images and the file cache live under it. */
  stateDir: string;
  agentName: string;
}

const RESTORE_TIMEOUT_MS = 120_000;

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
    const cache = join(this.defaults.stateDir, 'cache');
    ensurePrivateDir(cache);
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
        launch: { file: runtime.init, args: ['restore', '--control', controlPath, '--image', file, '--cache', cache] },
        controlPath,
        initialScreen: record.snapshot,
        restoredFrom: file,
      }),
    );
    let reply: string;
    try {
      reply = await Promise.race([
        podRequestWhenUp(controlPath, 'restore-status', RESTORE_TIMEOUT_MS),
        session.whenExited().then(() => 'error the restorer ended'),
      ]);
    } catch (err) {
      reply = `error ${(err as Error).message}`;
    }
    if (!reply.startsWith('ok')) {
      // The pod's own answer says why; when it died before it could answer, its last words on
      // the terminal do (a line may be wrapped there, so the answer comes first).
      let why = reply.replace(/^error /, '');
      if (why === 'the restorer ended') {
        const screen = await session.screen().catch(() => null);
        const text = screen?.lines.join('') ?? '';
        const at = text.indexOf('vos: restore failed: ');
        if (at >= 0) why = text.slice(at + 21).trim();
      }
      await this.remove(session.id, true);
      throw new VosError('restore_failed', `cannot restore ${file}: ${why}`);
    }
    return session;
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

  /** The control socket of a session's pod, or null when its path would be too long. */
  private podSocket(id: string): string | null {
    const dir = join(this.defaults.stateDir, 'pods');
    const path = join(dir, `${id}.sock`);
    if (Buffer.byteLength(path) > 107) return null;
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
