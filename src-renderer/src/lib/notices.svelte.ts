/**
 * Desktop notifications from the app (the browser's, which Electron shows as the desktop's): a
 * machine asking to pair, a session that ended, and in a browser (no tray there; Electron's tray
 * says these itself) a scheduled checkpoint that failed or paused (api/notice-rules.ts). Only while
 * the window is not the one in front: in front, the app shows them.
 *
 * A browser asks the user first (`enable`, from a click); Electron allows them.
 */
import type { ApiClient } from '../../../src-main/api/client';
import type { ScheduleInfo, SessionState } from '../../../src-main/api/protocol';
import { noticeFor, type Notice } from '../../../src-main/api/notice-rules';

export class NoticesState {
  /** 'default': not asked yet (a browser); 'unsupported': no notifications here. */
  permission = $state<NotificationPermission | 'unsupported'>(typeof Notification === 'undefined' ? 'unsupported' : Notification.permission);
  private readonly known = { states: new Map<string, SessionState>(), schedules: new Map<string, ScheduleInfo>() };
  private unsubscribe: (() => void) | null = null;

  constructor(
    /** Whether a window of the app is in front (then the app itself shows it all). */
    private readonly inFront: () => boolean,
    /** Electron's tray notifies about schedules itself. */
    private readonly withSchedules: boolean,
  ) {}

  bind(client: ApiClient | null): void {
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.known.states.clear();
    this.known.schedules.clear();
    if (!client) return;
    this.unsubscribe = client.onEvent((e) => {
      const notice = noticeFor(e, this.known, this.withSchedules);
      if (notice && !this.inFront()) this.show(notice);
    });
  }

  /** Knows the sessions' states as listed (an exit is a change from running). */
  seed(sessions: ReadonlyArray<{ id: string; state: SessionState; peer?: unknown }>): void {
    for (const s of sessions) if (!this.known.states.has(s.id)) this.known.states.set(s.id, s.state);
  }

  /** From a click: the browser asks its user. */
  async enable(): Promise<void> {
    if (this.permission === 'unsupported') return;
    this.permission = await Notification.requestPermission();
  }

  private show(n: Notice): void {
    if (this.permission !== 'granted') return;
    try {
      new Notification(n.title, { body: n.body, tag: n.tag });
    } catch {
      /* a browser that wants a service worker for them: the app shows it all anyway */
    }
  }
}
