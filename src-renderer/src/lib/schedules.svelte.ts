/**
 * Every session's checkpoint schedule, as the app shows them: loaded with `schedule.list` and
 * kept current by `schedule.changed` events (the agent sends them to clients that watch the
 * sessions, which SessionsState does on the same connection). Setting a period (`schedule.set`,
 * which also resumes a paused schedule) or turning it off (`schedule.off`); what failed is kept
 * per session with the agent's reason until the next action. Components read this; they do not
 * call the agent.
 */
import type { ApiClient } from '../../../src-main/api/client';
import { MAX_SCHEDULE_MS, MIN_SCHEDULE_MS, type ScheduleDefault, type ScheduleInfo } from '../../../src-main/api/protocol';
import { formatPeriod, parsePeriod } from '../../../src-main/api/schedule-text';

export class SchedulesState {
  /** The schedules by session id (sessions of this machine only). */
  bySession = $state<Record<string, ScheduleInfo>>({});
  /** What new sessions get. */
  defaults = $state<ScheduleDefault | null>(null);
  /** Sessions with a change under way. */
  busy = $state<Record<string, boolean>>({});
  /** Why the last change of a session's schedule failed. */
  errors = $state<Record<string, string>>({});
  /** Why the schedules could not be listed, or null. */
  loadError = $state<string | null>(null);

  private client: ApiClient | null = null;
  private unsubscribe: (() => void) | null = null;

  /** Follows a (new) client: loads the schedules and listens to their changes. */
  async bind(client: ApiClient | null): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.client = client;
    if (!client) return;
    this.unsubscribe = client.onEvent((e) => {
      if (e.event === 'schedule.changed') this.bySession = { ...this.bySession, [e.schedule.session]: e.schedule };
      else if (e.event === 'session.removed' && this.bySession[e.id]) {
        const { [e.id]: _gone, ...rest } = this.bySession;
        this.bySession = rest;
      }
    });
    try {
      // Answered after any event sent before it: the list is at least as new as those.
      const list = await client.request('schedule.list', {});
      if (this.client !== client) return;
      this.loadError = null;
      this.defaults = list.default;
      this.bySession = Object.fromEntries(list.schedules.map((s) => [s.session, s]));
    } catch (err) {
      if (this.client === client) this.loadError = `Cannot list the checkpoint schedules: ${(err as Error).message}`;
    }
  }

  of(session: string): ScheduleInfo | null {
    return this.bySession[session] ?? null;
  }

  /** A period (ms) and retention for the session; resumes it when paused. */
  async set(session: string, everyMs: number, keep: number): Promise<void> {
    await this.run(session, (client) => client.request('schedule.set', { session, everyMs, keep }));
  }

  async off(session: string): Promise<void> {
    await this.run(session, (client) => client.request('schedule.off', { session }));
  }

  /** Resumes a paused schedule with its period and retention. */
  async resume(session: string): Promise<void> {
    const s = this.of(session);
    if (!s || s.everyMs === null) return;
    await this.set(session, s.everyMs, s.keep);
  }

  /** Shows a problem with what the user typed (not the agent's). */
  refuse(session: string, message: string): void {
    this.errors = { ...this.errors, [session]: message };
  }

  private async run(session: string, fn: (client: ApiClient) => Promise<ScheduleInfo>): Promise<void> {
    const client = this.client;
    if (!client || this.busy[session]) return;
    this.busy = { ...this.busy, [session]: true };
    const { [session]: _old, ...errors } = this.errors;
    this.errors = errors;
    try {
      const info = await fn(client);
      this.bySession = { ...this.bySession, [session]: info };
    } catch (err) {
      this.errors = { ...this.errors, [session]: `Changing the schedule failed: ${(err as Error).message}` };
    } finally {
      const { [session]: _done, ...rest } = this.busy;
      this.busy = rest;
    }
  }
}

/** A custom period as typed ("30s", "10m", "1h30m") in milliseconds, or why it is not one. */
export function customPeriod(text: string): { ms: number } | { error: string } {
  const ms = parsePeriod(text.trim().replace(/\s+/g, ''));
  const range = `from ${formatPeriod(MIN_SCHEDULE_MS)} to ${formatPeriod(MAX_SCHEDULE_MS)}`;
  if (ms === null) return { error: `“${text}” is not a period: give a number and a unit (s, m, h, d), e.g. 30s, 10m, 2h or 1h30m, ${range}.` };
  if (ms < MIN_SCHEDULE_MS || ms > MAX_SCHEDULE_MS) return { error: `The period must be ${range}.` };
  return { ms };
}
