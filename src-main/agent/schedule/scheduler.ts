/**
 * Scheduled checkpoints: each session of this agent may have a period and a retention ("every
 * 15 minutes, keep 3"); the scheduler checkpoints it into the image store (kind 'scheduled',
 * incremental where the store can) when its time comes, one checkpoint at a time for the whole
 * agent, and keeps what it did in `<state>/schedules.json` (schedule-store.ts).
 *
 * - New sessions (created, restored, moved here) get the default when it is on, and a session
 *   that cannot be checkpointed (no pod) an "off" schedule; sessions a new agent adopts keep
 *   their stored schedule (a session without one gets the default). A session that ends, is
 *   removed or moves away loses its schedule.
 * - The next run is due a period after the last one started (or after it ended, when it took
 *   longer than the period), or after the schedule was set. A run that came due while no agent
 *   ran happens once, soon after the agent starts, not once per missed period.
 * - Never two checkpoints of one session at once: a run that finds a manual checkpoint or a
 *   migration of the session under way skips this period and says so in its last result.
 * - A failed run never touches the session. A program that cannot be checkpointed (`unsupported`:
 *   a traced program, a SysV message queue, a device, no pod) pauses the schedule with the reason,
 *   once; `schedule.set` resumes it. Any other failure (a full disk, a timeout) is shown as the
 *   last result and the schedule stays.
 * - A run that had to write a whole image where it asked for an incremental one (no write
 *   tracking on this kernel, ...) says why in its last result once, when the reason is new
 *   (ScheduleRun.fullReason), not every period.
 * - Every change goes out as `schedule.changed` to local watchers.
 */
import { VosError, describeError } from '../../api/errors.js';
import type { ApiEvent, CheckpointResult, ScheduleDefault, ScheduleInfo, ScheduleRun, SessionInfo } from '../../api/protocol.js';
import { withTimeout } from '../../base/with-timeout.js';
import type { SessionListEvent, SessionManager } from '../session-manager.js';
import { ScheduleStore, type ScheduleState, type StoredSchedule } from './schedule-store.js';

export type ScheduleEvent = Extract<ApiEvent, { event: 'schedule.changed' }>;

/** A run overdue when the agent starts waits this long (or one period, if shorter). */
const STARTUP_GRACE_MS = 5000;
/** How long stopping the agent waits for a scheduled checkpoint under way. */
const STOP_WAIT_MS = 15_000;
/** setTimeout's longest delay. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Longest error text kept in a last result. */
const MAX_ERROR = 1000;

export class Scheduler {
  private state: ScheduleState = { default: { everyMs: null, keep: 1 }, sessions: new Map() };
  private readonly startedAt = Date.now();
  private timer: NodeJS.Timeout | null = null;
  /** Sessions whose run is due, in order; one runs at a time. */
  private readonly queue: string[] = [];
  private running: { id: string; done: Promise<void> } | null = null;
  private readonly listeners = new Set<(e: ScheduleEvent) => void>();
  private unsubscribe: (() => void) | null = null;
  private stopped = false;

  constructor(
    private readonly sessions: SessionManager,
    private readonly store: ScheduleStore,
    private readonly log: (message: string) => void,
  ) {}

  /** Loads the schedules, matches them with the sessions there are (adopted ones) and arms the timer. */
  start(): void {
    this.state = this.store.load(this.log);
    const live = new Map(this.sessions.list().map((s) => [s.id, s]));
    for (const id of [...this.state.sessions.keys()]) {
      if (live.get(id)?.state !== 'running') this.state.sessions.delete(id);
    }
    for (const s of live.values()) if (s.state === 'running' && !this.state.sessions.has(s.id)) this.state.sessions.set(s.id, this.fresh(s));
    this.unsubscribe = this.sessions.onEvent((e) => this.sessionEvent(e));
    this.persist();
    this.arm();
  }

  /** Stops the timer and waits (bounded) for a run under way; the schedules stay for the next agent. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.unsubscribe?.();
    this.queue.length = 0;
    if (this.running) {
      await withTimeout(this.running.done, STOP_WAIT_MS, 'a scheduled checkpoint did not end in time').catch((err: unknown) =>
        this.log(`stopping: ${describeError(err)}`),
      );
    }
  }

  onEvent(listener: (e: ScheduleEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  list(): { default: ScheduleDefault; schedules: ScheduleInfo[] } {
    return {
      default: { ...this.state.default },
      schedules: this.sessions
        .list()
        .filter((s) => s.state === 'running')
        .map((s) => this.info(s.id)),
    };
  }

  /** A schedule for the session (id, id prefix or name); resumes a paused one. */
  set(ref: string, everyMs: number, keep: number): ScheduleInfo {
    const session = this.runningSession(ref);
    if (!session.pod) {
      throw new VosError('unsupported', `session ${session.id} cannot be checkpointed or moved: ${session.cannotCheckpoint ?? 'it does not run in a pod'}`);
    }
    const before = this.state.sessions.get(session.id);
    this.change(() => {
      this.state.sessions.set(session.id, { name: session.name, everyMs, keep, since: Date.now(), paused: null, last: before?.last ?? null, fullSaid: before?.fullSaid ?? null });
    });
    this.emit(session.id);
    return this.info(session.id);
  }

  off(ref: string): ScheduleInfo {
    const session = this.runningSession(ref);
    const before = this.state.sessions.get(session.id);
    this.change(() => {
      this.state.sessions.set(session.id, {
        name: session.name,
        everyMs: null,
        keep: before?.keep ?? this.state.default.keep,
        since: Date.now(),
        paused: null,
        last: before?.last ?? null,
        fullSaid: before?.fullSaid ?? null,
      });
    });
    this.emit(session.id);
    return this.info(session.id);
  }

  /** Changes the default for new sessions; existing schedules stay as they are. */
  setDefault(p: { everyMs?: number; keep?: number; off?: boolean }): ScheduleDefault {
    this.change(() => {
      if (p.off) this.state.default.everyMs = null;
      else if (p.everyMs !== undefined) this.state.default.everyMs = p.everyMs;
      if (p.keep !== undefined) this.state.default.keep = p.keep;
    });
    return { ...this.state.default };
  }

  info(id: string): ScheduleInfo {
    const s = this.state.sessions.get(id);
    const name = this.liveInfo(id)?.name ?? s?.name ?? '';
    if (!s) return { session: id, name, everyMs: null, keep: this.state.default.keep, nextRunAt: null, paused: null, last: null };
    return { session: id, name, everyMs: s.everyMs, keep: s.keep, nextRunAt: this.nextRunAt(s), paused: s.paused, last: s.last };
  }

  /** When the schedule's next run is due, or null (off, paused). */
  private nextRunAt(s: StoredSchedule): number | null {
    if (s.everyMs === null || s.paused !== null) return null;
    return Math.max(s.since + s.everyMs, this.startedAt + Math.min(STARTUP_GRACE_MS, s.everyMs));
  }

  /** A new session's schedule: the default, or off when there is none or it has no pod. */
  private fresh(s: SessionInfo): StoredSchedule {
    const d = this.state.default;
    return { name: s.name, everyMs: s.pod ? d.everyMs : null, keep: d.keep, since: Date.now(), paused: null, last: null, fullSaid: null };
  }

  private sessionEvent(e: SessionListEvent): void {
    if (e.event === 'session.added') {
      if (e.session.state !== 'running' || this.state.sessions.has(e.session.id)) return;
      this.state.sessions.set(e.session.id, this.fresh(e.session));
      this.afterChange(e.session.id);
    } else if (e.event === 'session.changed') {
      if (e.session.state !== 'exited' || !this.state.sessions.has(e.session.id)) return;
      this.forget(e.session.id);
    } else if (e.event === 'session.removed' || e.event === 'session.moved') {
      if (this.state.sessions.has(e.id)) this.forget(e.id);
    }
  }

  /** The session ended or went away: its schedule goes (watchers see it off). */
  private forget(id: string): void {
    const info = { ...this.info(id), everyMs: null, nextRunAt: null };
    this.state.sessions.delete(id);
    const queued = this.queue.indexOf(id);
    if (queued >= 0) this.queue.splice(queued, 1);
    this.persist();
    this.arm();
    for (const l of this.listeners) l({ event: 'schedule.changed', schedule: info });
  }

  private afterChange(id: string): void {
    this.persist();
    this.arm();
    this.emit(id);
  }

  /** A change a client asked for: saved before it counts; undone (and thrown) if it cannot be saved. */
  private change(mutate: () => void): void {
    const saved: ScheduleState = { default: { ...this.state.default }, sessions: new Map(this.state.sessions) };
    mutate();
    try {
      this.store.save(this.state);
    } catch (err) {
      this.state = saved;
      throw new VosError('unavailable', `cannot save the schedules (${this.store.path}): ${describeError(err)}; nothing was changed`);
    }
    this.arm();
  }

  /** Saves after a run or a session change; a failure is logged (the schedules go on in memory). */
  private persist(): void {
    try {
      this.store.save(this.state);
    } catch (err) {
      this.log(`cannot save the schedules (${this.store.path}): ${describeError(err)}`);
    }
  }

  private emit(id: string): void {
    if (this.listeners.size === 0) return;
    const schedule = this.info(id);
    for (const l of this.listeners) l({ event: 'schedule.changed', schedule });
  }

  /** Sets the timer for the earliest run due that is not queued or under way. */
  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.stopped) return;
    let earliest = Infinity;
    for (const [id, s] of this.state.sessions) {
      if (this.queue.includes(id) || this.running?.id === id) continue;
      const next = this.nextRunAt(s);
      if (next !== null && next < earliest) earliest = next;
    }
    if (earliest === Infinity) return;
    const delay = Math.min(Math.max(0, earliest - Date.now()), MAX_TIMER_MS);
    this.timer = setTimeout(() => this.fire(), delay);
    this.timer.unref();
  }

  private fire(): void {
    this.timer = null;
    const now = Date.now();
    const due = [...this.state.sessions]
      .filter(([id, s]) => !this.queue.includes(id) && this.running?.id !== id && (this.nextRunAt(s) ?? Infinity) <= now)
      .sort(([, a], [, b]) => this.nextRunAt(a)! - this.nextRunAt(b)!);
    for (const [id] of due) this.queue.push(id);
    this.pump();
    this.arm();
  }

  /** Starts the next queued run unless one is under way. */
  private pump(): void {
    if (this.running || this.stopped) return;
    const id = this.queue.shift();
    if (id === undefined) return;
    const done = this.run(id)
      .catch((err: unknown) => this.log(`scheduled checkpoint of ${id}: ${describeError(err)}`))
      .finally(() => {
        this.running = null;
        this.pump();
        this.arm();
      });
    this.running = { id, done };
  }

  private async run(id: string): Promise<void> {
    const s = this.state.sessions.get(id);
    const next = s ? this.nextRunAt(s) : null;
    if (!s || next === null || next > Date.now()) return; // changed since it was queued
    const session = this.liveInfo(id);
    if (!session || session.state !== 'running') return; // its end is on its way as an event
    const at = Date.now();
    let last: ScheduleRun;
    let paused: string | null = null;
    /** Why this run's image is whole (undefined: the run wrote none, so what was said stays). */
    let fullNow: string | null | undefined;
    const busy = this.sessions.busyWith(id);
    if (busy) {
      last = { at, ok: false, skipped: true, error: `skipped: ${busy} of the session was under way (the next run is a period later)` };
    } else if (!session.pod) {
      paused = session.cannotCheckpoint ?? 'it does not run in a pod';
      last = { at, ok: false, error: paused };
    } else {
      try {
        const result = await this.sessions.checkpointScheduled(id, s.keep);
        fullNow = result.incremental ? null : (result.fullReason ?? null);
        last = runResult(at, result, fullNow !== null && fullNow !== (s.fullSaid ?? null) ? fullNow : null);
      } catch (err) {
        const e = err instanceof VosError ? err : new VosError('internal', describeError(err));
        if ((e.code === 'session_exited' || e.code === 'unknown_session') && this.liveInfo(id)?.state !== 'running') return;
        const error = clip(e.message);
        last = { at, ok: false, error };
        if (e.code === 'unsupported') paused = error;
        this.log(`scheduled checkpoint of ${id} (${session.name}) failed${paused ? ', schedule paused' : ''}: ${error}`);
      }
    }
    // The schedule may have been set again, turned off or forgotten meanwhile.
    const cur = this.state.sessions.get(id);
    if (!cur) return;
    const end = Date.now();
    const since = cur.everyMs !== null && at + cur.everyMs <= end ? end : at;
    this.state.sessions.set(id, {
      ...cur,
      since: Math.max(cur.since, since),
      last,
      paused: paused ?? cur.paused,
      fullSaid: fullNow === undefined ? (cur.fullSaid ?? null) : fullNow,
    });
    this.afterChange(id);
  }

  private runningSession(ref: string): SessionInfo {
    const info = this.sessions.resolve(ref).info();
    if (info.state !== 'running') throw new VosError('session_exited', `session ${info.id} has ended: there is nothing to checkpoint`);
    return info;
  }

  private liveInfo(id: string): SessionInfo | null {
    try {
      const s = this.sessions.resolve(id);
      return s.id === id ? s.info() : null;
    } catch {
      return null;
    }
  }
}

/** A successful run; `fullReason` only when it is news (see ScheduleRun.fullReason). */
function runResult(at: number, r: CheckpointResult, fullReason: string | null): ScheduleRun {
  return {
    at,
    ok: true,
    ...(r.image !== null ? { image: r.image } : {}),
    bytes: r.bytes,
    incremental: r.incremental,
    ...(fullReason !== null ? { fullReason: clip(fullReason) } : {}),
  };
}

function clip(text: string): string {
  return text.length > MAX_ERROR ? `${text.slice(0, MAX_ERROR)}…` : text;
}
