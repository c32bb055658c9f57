/**
 * What the tray knows of the agent: its sessions and their checkpoint schedules, kept by the
 * events of `session.watch` (which include `schedule.changed`) on the supervisor's connection;
 * and whether vOS starts in the tray at login.
 * Pure (no Electron): the shell feeds it and draws what it says; tested with the tray model.
 */
import type { ApiEvent, ScheduleInfo, SessionInfo } from '../api/protocol.js';
import type { SupervisorState } from '../client/agent-supervisor.js';
import { scheduleNotice, type ScheduleNotice } from '../api/schedule-notices.js';
import type { TrayInput } from './tray-menu.js';

export class TrayData {
  private sessions = new Map<string, SessionInfo>();
  private schedules = new Map<string, ScheduleInfo>();
  /** Whether vOS starts in the tray at login (the shell reads it from the autostart entry). */
  startAtLogin = false;

  /** A new agent (or none): nothing known yet. */
  reset(): void {
    this.sessions = new Map();
    this.schedules = new Map();
  }

  /** The answer of `session.watch`. */
  listedSessions(list: SessionInfo[]): void {
    for (const s of list) this.sessions.set(s.id, s);
  }

  /**
   * The answer of `schedule.list`: no notices for what was already so (a failure from before the
   * tray looked is in the menu and tooltip). An event that came meanwhile is at least as new.
   */
  listedSchedules(list: ScheduleInfo[]): void {
    for (const s of list) if (!this.schedules.has(s.session)) this.schedules.set(s.session, s);
  }

  /** An event of the agent: whether the tray should be redrawn, and what to notify, if anything. */
  apply(e: ApiEvent): { changed: boolean; notice: ScheduleNotice | null } {
    switch (e.event) {
      case 'session.added':
      case 'session.changed':
        this.sessions.set(e.session.id, e.session);
        return { changed: true, notice: null };
      case 'session.removed':
        this.sessions.delete(e.id);
        this.schedules.delete(e.id);
        return { changed: true, notice: null };
      case 'schedule.changed': {
        const notice = scheduleNotice(this.schedules.get(e.schedule.session), e.schedule);
        this.schedules.set(e.schedule.session, e.schedule);
        return { changed: true, notice };
      }
      default:
        return { changed: false, notice: null };
    }
  }

  session(id: string): SessionInfo | undefined {
    return this.sessions.get(id);
  }

  input(agent: SupervisorState): TrayInput {
    return { agent, sessions: [...this.sessions.values()], schedules: [...this.schedules.values()], startAtLogin: this.startAtLogin };
  }
}
