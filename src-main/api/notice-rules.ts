/**
 * Which events become a desktop notification, and in what words (pure: the app's
 * lib/notices.svelte.ts shows them, only while no window of the app is in front): a machine
 * asking to pair; a session of this machine that ended; a scheduled checkpoint that failed or
 * paused (in a browser only: Electron's tray says those).
 */
import type { ApiEvent, ScheduleInfo, SessionState } from './protocol.js';
import { scheduleNotice } from './schedule-notices.js';
import { describeExit } from './session-text.js';

export interface Notice {
  title: string;
  body: string;
  /** One notification per tag: a newer one replaces it. */
  tag: string;
}

/** The notice an event calls for, given what was known before it (pure; `known` is updated). */
export function noticeFor(
  e: ApiEvent,
  known: { states: Map<string, SessionState>; schedules: Map<string, ScheduleInfo> },
  withSchedules: boolean,
): Notice | null {
  if (e.event === 'pair.requested') {
    return { title: `${e.peer.name} wants to pair with this machine`, body: `Open vOS and compare the code: ${e.code}.`, tag: `pair-${e.peer.id}` };
  }
  if (e.event === 'session.added' || e.event === 'session.changed' || e.event === 'session.exited') {
    const s = e.session;
    const before = known.states.get(s.id);
    known.states.set(s.id, s.state);
    if (before !== 'running' || s.state !== 'exited' || s.peer) return null;
    return { title: `“${s.name}” ended`, body: `${s.command}: ${describeExit(s.exit)}.`, tag: `ended-${s.id}` };
  }
  if (e.event === 'session.removed' || e.event === 'session.moved') {
    known.states.delete(e.id);
    return null;
  }
  if (e.event === 'schedule.changed' && withSchedules) {
    const before = known.schedules.get(e.schedule.session);
    known.schedules.set(e.schedule.session, e.schedule);
    const n = scheduleNotice(before, e.schedule);
    return n ? { ...n, tag: `schedule-${e.schedule.session}` } : null;
  }
  return null;
}
