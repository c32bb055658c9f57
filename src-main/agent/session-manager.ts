/**
 * The agent's sessions: creating them, finding them by reference, forgetting them, and telling
 * watchers about every change.
 */
import { basename } from 'node:path';
import { VosError } from '../api/errors.js';
import type { ApiEvent, CreateSessionParams, SessionInfo } from '../api/protocol.js';
import { shortId } from '../base/ids.js';
import { DEFAULT_COLS, DEFAULT_ROWS, Session } from './session/session.js';

export type SessionListEvent = Extract<ApiEvent, { event: 'session.added' | 'session.changed' | 'session.removed' }>;

export interface SessionDefaults {
  cwd: string;
  env: Record<string, string>;
}

export class SessionManager {
  private readonly sessions = new Map<string, Session>();
  private readonly listeners = new Set<(e: SessionListEvent) => void>();

  constructor(private readonly defaults: SessionDefaults) {}

  create(params: CreateSessionParams): Session {
    let id = shortId();
    while (this.sessions.has(id)) id = shortId();
    const session = new Session({
      id,
      name: params.name?.trim() || basename(params.command),
      command: params.command,
      args: params.args ?? [],
      cwd: params.cwd ?? this.defaults.cwd,
      env: params.env ?? this.defaults.env,
      cols: params.cols ?? DEFAULT_COLS,
      rows: params.rows ?? DEFAULT_ROWS,
    });
    this.sessions.set(id, session);
    session.onChange = (s) => {
      if (this.sessions.get(s.id) === s) this.emit({ event: 'session.changed', session: s.info() });
    };
    this.emit({ event: 'session.added', session: session.info() });
    return session;
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

  private emit(e: SessionListEvent): void {
    for (const l of this.listeners) l(e);
  }
}
