/**
 * What the tray notifies about scheduled checkpoints (api/schedule-notices.ts) and how the tray
 * keeps its sessions and schedules from the agent's events (shell/tray-data.ts): a failure or a
 * pause is said once, not every period; a skipped run, a changed period or what was already so
 * when the tray looked is not said at all.
 */
import { describe, expect, it } from 'vitest';
import type { AgentInfo, ScheduleInfo, ScheduleRun, SessionInfo } from '../../src-main/api/protocol.js';
import { scheduleNotice } from '../../src-main/api/schedule-notices.js';
import { TrayData } from '../../src-main/shell/tray-data.js';
import { trayTooltip } from '../../src-main/shell/tray-menu.js';

const info = (over: Partial<ScheduleInfo> = {}): ScheduleInfo => ({
  session: 'a1',
  name: 'build',
  everyMs: 60_000,
  keep: 3,
  nextRunAt: 1,
  paused: null,
  last: null,
  ...over,
});
const ok = (at: number): ScheduleRun => ({ at, ok: true, image: 'abcd0001', bytes: 1000, incremental: true });
const failed = (at: number, error = 'no space left on device (ENOSPC)'): ScheduleRun => ({ at, ok: false, error });

describe('schedule notices', () => {
  it('a failed run is said, with the reason and that the session was not touched', () => {
    const n = scheduleNotice(info({ last: ok(1) }), info({ last: failed(2) }));
    expect(n).toEqual({
      title: 'A scheduled checkpoint of “build” failed',
      body: 'no space left on device (ENOSPC). The session was not touched; the schedule goes on.',
    });
    // Unknown before (a session the tray had not seen a schedule of): said too.
    expect(scheduleNotice(undefined, info({ last: failed(2) }))?.title).toMatch(/failed$/);
  });

  it('failing the same way again is not said again; otherwise, or after a good run, it is', () => {
    expect(scheduleNotice(info({ last: failed(1) }), info({ last: failed(2) }))).toBeNull();
    expect(scheduleNotice(info({ last: failed(1) }), info({ last: failed(2, 'timed out after 60 s') }))?.body).toMatch(/^timed out after 60 s\./);
    expect(scheduleNotice(info({ last: ok(3) }), info({ last: failed(4) }))).not.toBeNull();
  });

  it('the same run told again (the period changed) and a schedule turned off are not failures to say', () => {
    expect(scheduleNotice(info({ last: failed(1) }), info({ everyMs: 300_000, last: failed(1) }))).toBeNull();
    expect(scheduleNotice(info({ last: ok(1) }), info({ everyMs: null, last: failed(2) }))).toBeNull();
  });

  it('a skipped run, a good run and a whole image instead of an incremental one are not said', () => {
    const skipped: ScheduleRun = { at: 2, ok: false, skipped: true, error: 'skipped: a manual checkpoint of the session was under way' };
    expect(scheduleNotice(info({ last: ok(1) }), info({ last: skipped }))).toBeNull();
    expect(scheduleNotice(info({ last: ok(1) }), info({ last: ok(2) }))).toBeNull();
    expect(scheduleNotice(info(), info({ last: { ...ok(2), incremental: false, fullReason: 'no write tracking' } }))).toBeNull();
  });

  it('a pause is said once, with its reason, as a pause (not also as a failure)', () => {
    const reason = 'the pod has a SysV message queue, which vOS cannot carry yet';
    const pausedInfo = info({ paused: reason, nextRunAt: null, last: failed(2, reason) });
    expect(scheduleNotice(info({ last: ok(1) }), pausedInfo)).toEqual({
      title: 'Checkpoints of “build” paused',
      body: `${reason}. The session runs on. Choose a period again (tray or app) to resume.`,
    });
    expect(scheduleNotice(pausedInfo, { ...pausedInfo, keep: 4 })).toBeNull();
    // Resumed, and paused again: said again.
    const resumed = info({ last: failed(2, reason) });
    expect(scheduleNotice(resumed, { ...pausedInfo, last: failed(3, reason) })).not.toBeNull();
  });

  it('a long reason is cut', () => {
    const n = scheduleNotice(undefined, info({ last: failed(1, 'x'.repeat(2000)) }));
    expect(n!.body.length).toBeLessThan(400);
  });
});

describe('tray data', () => {
  const agent = { kind: 'running', agent: { pid: 1 } as AgentInfo, startedHere: false } as const;
  const session = { id: 'a1', name: 'build', state: 'running', pod: true, peer: null } as SessionInfo;

  it('keeps sessions and schedules from events; notices only for changes seen as events', () => {
    const data = new TrayData();
    data.listedSessions([session]);
    // Already failing when the tray looked: in the tooltip, no notification.
    data.listedSchedules([info({ last: failed(1) })]);
    expect(trayTooltip(data.input(agent))).toBe('vOS: 1 checkpoint failed');
    expect(data.apply({ event: 'schedule.changed', schedule: info({ last: ok(2) }) })).toEqual({ changed: true, notice: null });
    expect(trayTooltip(data.input(agent))).toBe('vOS');
    expect(data.apply({ event: 'schedule.changed', schedule: info({ last: failed(3) }) }).notice?.title).toMatch(/failed$/);
    // The list answering after an event does not take it back.
    data.listedSchedules([info({ last: ok(2) })]);
    expect(trayTooltip(data.input(agent))).toBe('vOS: 1 checkpoint failed');
    // Another kind of event changes nothing here.
    expect(data.apply({ event: 'session.output', id: 'a1', data: 'x' })).toEqual({ changed: false, notice: null });
    data.apply({ event: 'session.removed', id: 'a1' });
    expect(data.input(agent)).toMatchObject({ sessions: [], schedules: [] });
    data.listedSessions([session]);
    data.reset();
    expect(data.input(agent)).toMatchObject({ sessions: [], schedules: [] });
  });
});
