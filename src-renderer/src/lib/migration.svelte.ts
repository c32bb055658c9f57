/**
 * Moving a session to another machine from the app: which session is being moved where, its
 * progress as the agent reports it, and how it ended. The agent does the work (session.migrate);
 * the terminal view follows the session by itself (session.moved).
 */
import type { ApiClient } from '../../../src-main/api/client';
import { VosError } from '../../../src-main/api/errors';
import type { MigrationPhase, PeerRef } from '../../../src-main/api/protocol';

export interface MoveState {
  sessionId: string;
  sessionName: string;
  peerId: string;
  peerName: string;
  phase: MigrationPhase;
  sent: number;
  total: number;
  /** Set when it failed: the reason (the session runs on where it was). */
  error: string | null;
  /** Set when it moved: where it runs now. */
  movedTo: string | null;
  /** What the user should know about how it moved (not live, and why; clocks that jumped). */
  note: string | null;
  /** What the move will not carry (a connection to another machine...), said before the stop. */
  warnings: string[];
  /**
   * Refused only because these files have other content on the target: moving anyway lets the
   * program use them as they are there (`moveAnyway`). Empty otherwise.
   */
  takeAsIs: string[];
}

/** How long "Moved." stays. */
export const MOVED_SHOWN_MS = 4000;

export class MigrationState {
  /** The session the user picked a machine for (the "Move to" dialog is open); `peer`: the
   * paired machine it runs on (null: this one). */
  choosing = $state<{ id: string; name: string; peer?: PeerRef | null } | null>(null);
  current = $state<MoveState | null>(null);

  private client: ApiClient | null = null;
  private unsubscribe: (() => void) | null = null;

  bind(client: ApiClient | null): void {
    this.unsubscribe?.();
    this.client = client;
    this.unsubscribe =
      client?.onEvent((e) => {
        if (e.event === 'migration.progress' && this.current && e.id === this.current.sessionId) {
          const warning = e.detail?.startsWith('warning: ') ? e.detail.slice('warning: '.length) : null;
          const warnings = warning && !this.current.warnings.includes(warning) ? [...this.current.warnings, warning] : this.current.warnings;
          this.current = { ...this.current, phase: e.phase, sent: e.sent, total: e.total, warnings };
        }
      }) ?? null;
  }

  choose(session: { id: string; name: string; peer?: PeerRef | null }): void {
    this.choosing = session;
  }

  cancelChoice(): void {
    this.choosing = null;
  }

  get busy(): boolean {
    return this.current !== null && this.current.error === null && this.current.movedTo === null;
  }

  async move(session: { id: string; name: string }, peer: { id: string; name: string }, takeAsIs: string[] = []): Promise<void> {
    if (!this.client || this.busy) return;
    this.choosing = null;
    this.current = {
      sessionId: session.id,
      sessionName: session.name,
      peerId: peer.id,
      peerName: peer.name,
      phase: 'checking',
      sent: 0,
      total: 0,
      error: null,
      movedTo: null,
      note: null,
      warnings: [],
      takeAsIs: [],
    };
    try {
      const r = await this.client.request('session.migrate', { id: session.id, peer: peer.id, ...(takeAsIs.length ? { takeAsIs } : {}) });
      const kept = r.relayed.length ? `Kept open where it was, and relayed: ${r.relayed.join('; ')}.` : null;
      const notes = [r.fallback && `Not live: ${r.fallback}.`, r.session.restoreNote && `Note: ${r.session.restoreNote}.`, kept].filter(Boolean);
      const done: MoveState = { ...this.current, phase: 'done', movedTo: r.session.id, note: notes.length ? notes.join(' ') : null };
      this.current = done;
      // "Moved." goes by itself; a note stays until it is read (OK, or Escape).
      if (!done.note && done.warnings.length === 0) setTimeout(() => this.current?.movedTo === done.movedTo && this.current.phase === 'done' && this.dismiss(), MOVED_SHOWN_MS);
    } catch (err) {
      const takeAsIs = err instanceof VosError ? (err.details.takeAsIs ?? []) : [];
      this.current = { ...this.current, phase: 'failed', error: (err as Error).message, takeAsIs };
    }
  }

  /** The failed move again, letting the program use the files that differ there as they are. */
  async moveAnyway(): Promise<void> {
    const m = this.current;
    if (!m || m.phase !== 'failed' || m.takeAsIs.length === 0) return;
    this.current = null;
    await this.move({ id: m.sessionId, name: m.sessionName }, { id: m.peerId, name: m.peerName }, m.takeAsIs);
  }

  dismiss(): void {
    if (!this.busy) this.current = null;
  }
}
