/**
 * When the tray (and the app in a browser, which has no tray) tells its user about a scheduled
 * checkpoint, and with what words: a pure function of a session's schedule before and after a
 * `schedule.changed` event (the shell or the page only shows what it returns, as a
 * notification). Said once, not every period:
 *
 * - a schedule that pauses (the program cannot be checkpointed), when it pauses or its reason
 *   changes;
 * - a run that failed, when the run before did not fail the same way (a full disk failing every
 *   five minutes is said once, and again only after a run went well or failed otherwise).
 *
 * Skipped runs (another checkpoint was under way) and whole images instead of incremental ones are
 * no failures: the app and `vos schedule` show them.
 */
import type { ScheduleInfo } from './protocol.js';
import { runFailed } from './schedule-text.js';

export interface ScheduleNotice {
  title: string;
  body: string;
}

/** Longest reason put in a notification (the app and `vos schedule` have the whole of it). */
const MAX_BODY = 300;

/** The reason as a sentence of bounded length. */
function sentence(text: string): string {
  if (text.length > MAX_BODY) return `${text.slice(0, MAX_BODY)}…`;
  return /[.!?…]$/.test(text) ? text : `${text}.`;
}

/** What to notify for the change from `before` (unknown: undefined) to `after`, or null. */
export function scheduleNotice(before: ScheduleInfo | undefined, after: ScheduleInfo): ScheduleNotice | null {
  const name = after.name || after.session;
  if (after.paused !== null) {
    if (before?.paused === after.paused) return null;
    return {
      title: `Checkpoints of “${name}” paused`,
      body: `${sentence(after.paused)} The session runs on. Choose a period again (tray or app) to resume.`,
    };
  }
  const last = after.last;
  if (!last || !runFailed(last) || after.everyMs === null) return null;
  const prev = before?.last ?? null;
  if (prev && prev.at === last.at) return null; // the same run, told again (e.g. the period changed)
  if (prev && runFailed(prev) && prev.error === last.error) return null; // failing the same way: said already
  return {
    title: `A scheduled checkpoint of “${name}” failed`,
    body: `${sentence(last.error ?? 'no reason given')} The session was not touched; the schedule goes on.`,
  };
}
