/**
 * Wording for checkpoint schedules, shared by the tray, its notifications and the app so that
 * all of them say the same thing. No Node or DOM imports: the renderer compiles this file too.
 */
import type { ScheduleInfo, ScheduleRun } from './protocol.js';
import { formatBytes } from './session-text.js';

export interface PeriodChoice {
  label: string;
  /** null: no schedule. */
  everyMs: number | null;
}

/** The periods the tray and the app offer (the app takes any other from MIN to MAX_SCHEDULE_MS too). */
export const PERIOD_CHOICES: readonly PeriodChoice[] = [
  { label: 'Off', everyMs: null },
  { label: '5 minutes', everyMs: 5 * 60_000 },
  { label: '15 minutes', everyMs: 15 * 60_000 },
  { label: '1 hour', everyMs: 3_600_000 },
  { label: '4 hours', everyMs: 4 * 3_600_000 },
];

const plural = (n: number, unit: string): string => `${n} ${unit}${n === 1 ? '' : 's'}`;

/** A period in the largest whole unit: "15 minutes", "1 hour", "90 seconds", "1500 ms". */
export function periodText(ms: number): string {
  if (ms % 86_400_000 === 0) return plural(ms / 86_400_000, 'day');
  if (ms % 3_600_000 === 0) return plural(ms / 3_600_000, 'hour');
  if (ms % 60_000 === 0) return plural(ms / 60_000, 'minute');
  if (ms % 1000 === 0) return plural(ms / 1000, 'second');
  return `${ms} ms`;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A period as people type it (`vos schedule --every`, the app's custom period): "30s", "15m",
 * "2h", "1h30m", "1d", "1500ms", as milliseconds; null for anything else. The range
 * (MIN_SCHEDULE_MS..MAX_SCHEDULE_MS) is the caller's to check.
 */
export function parsePeriod(text: string): number | null {
  if (!/^(\d+(ms|s|m|h|d))+$/.test(text)) return null;
  let ms = 0;
  for (const [, n, unit] of text.matchAll(/(\d+)(ms|s|m|h|d)/g)) ms += Number(n) * UNITS[unit!]!;
  return Number.isSafeInteger(ms) ? ms : null;
}

/** A period as parsePeriod takes it: "15m", "1h30m", "45s", "1500ms". */
export function formatPeriod(ms: number): string {
  if (ms % 1000 !== 0) return `${ms}ms`;
  let rest = ms / 1000;
  let text = '';
  for (const [unit, size] of [['d', 86_400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    if (rest >= size) {
      text += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return text || '0s';
}

/** "14:03:12", in the local time zone. */
export function clockTime(at: number): string {
  const d = new Date(at);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

/** A run failed (skipped runs are not failures: the session was busy with another checkpoint). */
export function runFailed(run: ScheduleRun | null): boolean {
  return run !== null && !run.ok && run.skipped !== true;
}

/**
 * How a run ended, without its time: "ok, 2.1 MiB, incremental", "ok, 3.0 MiB, whole image (no
 * write tracking…)", "failed: …", "skipped: …". The whole image's reason is there only on the run
 * where it is new (ScheduleRun.fullReason).
 */
export function runText(run: ScheduleRun): string {
  if (!run.ok) return run.skipped ? (run.error ?? 'skipped') : `failed: ${run.error ?? 'no reason given'}`;
  const kind = run.incremental === undefined ? '' : run.incremental ? 'incremental' : run.fullReason ? `whole image (${run.fullReason})` : 'whole image';
  return ['ok', run.bytes !== undefined ? formatBytes(run.bytes) : '', kind].filter(Boolean).join(', ');
}

/** What is wrong with a schedule, for a badge or a tooltip, or null. */
export function scheduleProblem(s: ScheduleInfo): 'paused' | 'failed' | null {
  if (s.paused !== null) return 'paused';
  if (s.everyMs !== null && runFailed(s.last)) return 'failed';
  return null;
}
