/**
 * The checkpoint schedules as they outlive the agent: `<state>/schedules.json`, written whole or
 * not at all (store/atomic-file.ts) after every change. It holds the default for new sessions
 * and, per session id, the period, retention, when the schedule last ran (the next run is
 * counted from it), why it is paused and how its last run ended. A session turned off stays in
 * it (everyMs null), so a later agent does not give it the default again.
 *
 * A file that cannot be read is set aside (`schedules.json.unreadable`) and the shipped default
 * used: the agent starts either way and says so in its log.
 */
import { readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { MAX_SCHEDULE_MS, MIN_SCHEDULE_MS, SHIPPED_SCHEDULE_DEFAULT, type ScheduleDefault, type ScheduleRun } from '../../api/protocol.js';
import { writeFileAtomic } from '../store/atomic-file.js';

/** One session's schedule as stored. */
export interface StoredSchedule {
  name: string;
  everyMs: number | null;
  keep: number;
  /** When it last ran, or was set (the next run is due `everyMs` after it). */
  since: number;
  paused: string | null;
  last: ScheduleRun | null;
  /**
   * Why the latest run wrote a whole image where an incremental one was asked, said or not; null
   * after an incremental one. A run gives its reason to clients (ScheduleRun.fullReason) only when
   * it differs from this, so the same reason is said once. Absent in files of earlier agents.
   */
  fullSaid?: string | null;
}

export interface ScheduleState {
  default: ScheduleDefault;
  sessions: Map<string, StoredSchedule>;
}

const MAX_KEEP = 100_000;
const MAX_TEXT = 4096;

export class ScheduleStore {
  readonly path: string;

  constructor(stateDir: string) {
    this.path = join(stateDir, 'schedules.json');
  }

  /** What the file says; the shipped default and no schedules when there is none or it is unreadable. */
  load(log: (message: string) => void): ScheduleState {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log(`cannot read ${this.path}: ${(err as Error).message}; using the shipped default`);
      return { default: { ...SHIPPED_SCHEDULE_DEFAULT }, sessions: new Map() };
    }
    try {
      return parseState(text);
    } catch (err) {
      const aside = `${this.path}.unreadable`;
      try {
        renameSync(this.path, aside);
      } catch {
        /* left where it is; overwritten by the next save */
      }
      log(`${this.path} is not a schedule file (${(err as Error).message}); set aside as ${aside}, using the shipped default`);
      return { default: { ...SHIPPED_SCHEDULE_DEFAULT }, sessions: new Map() };
    }
  }

  /** Writes the whole state atomically; throws (the file stays as it was) on failure. */
  save(state: ScheduleState): void {
    const sessions: Record<string, StoredSchedule> = {};
    for (const [id, s] of state.sessions) sessions[id] = s;
    writeFileAtomic(this.path, JSON.stringify({ v: 1, default: state.default, sessions }, null, 1) + '\n');
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isTime = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isPeriod = (v: unknown): v is number | null =>
  v === null || (Number.isSafeInteger(v) && (v as number) >= MIN_SCHEDULE_MS && (v as number) <= MAX_SCHEDULE_MS);
const isKeep = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 1 && (v as number) <= MAX_KEEP;
const isText = (v: unknown): v is string => typeof v === 'string' && v.length <= MAX_TEXT;

/** The file's content, every field checked; throws on anything else. */
export function parseState(text: string): ScheduleState {
  const raw: unknown = JSON.parse(text);
  if (!isObject(raw) || raw.v !== 1) throw new Error('not version 1');
  const d = raw.default;
  if (!isObject(d) || !isPeriod(d.everyMs) || !isKeep(d.keep)) throw new Error('a bad default');
  if (!isObject(raw.sessions)) throw new Error('no sessions');
  const sessions = new Map<string, StoredSchedule>();
  for (const [id, s] of Object.entries(raw.sessions)) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) throw new Error(`a bad session id ${JSON.stringify(id.slice(0, 80))}`);
    if (
      !isObject(s) ||
      !isText(s.name) ||
      !isPeriod(s.everyMs) ||
      !isKeep(s.keep) ||
      !isTime(s.since) ||
      !(s.paused === null || isText(s.paused)) ||
      !(s.last === null || parseRun(s.last)) ||
      !(s.fullSaid === undefined || s.fullSaid === null || isText(s.fullSaid))
    ) {
      throw new Error(`a bad schedule for session ${id}`);
    }
    const fullSaid = typeof s.fullSaid === 'string' ? s.fullSaid : null;
    sessions.set(id, { name: s.name, everyMs: s.everyMs, keep: s.keep, since: s.since, paused: s.paused, last: s.last as ScheduleRun | null, fullSaid });
  }
  return { default: { everyMs: d.everyMs, keep: d.keep }, sessions };
}

function parseRun(v: unknown): boolean {
  if (!isObject(v) || !isTime(v.at) || typeof v.ok !== 'boolean') return false;
  if (v.image !== undefined && !isText(v.image)) return false;
  if (v.bytes !== undefined && !isTime(v.bytes)) return false;
  if (v.incremental !== undefined && typeof v.incremental !== 'boolean') return false;
  if (v.fullReason !== undefined && !isText(v.fullReason)) return false;
  if (v.skipped !== undefined && typeof v.skipped !== 'boolean') return false;
  if (v.error !== undefined && !isText(v.error)) return false;
  return true;
}
