/** Which agent events the app turns into desktop notifications, and in what words (api/notice-rules.ts). */
import { describe, expect, it } from 'vitest';
import type { ApiEvent, PeerInfo, ScheduleInfo, SessionInfo, SessionState } from '../../src-main/api/protocol.js';
import { noticeFor } from '../../src-main/api/notice-rules.js';

const session = (state: SessionInfo['state'], over: Partial<SessionInfo> = {}): SessionInfo => ({
  id: 's1',
  name: 'build',
  command: 'make',
  args: [],
  cwd: '/',
  pid: 10,
  startedAt: 0,
  endedAt: state === 'exited' ? 1 : null,
  state,
  exit: state === 'exited' ? { code: 2, signal: null } : null,
  cols: 80,
  rows: 24,
  viewers: 0,
  pod: true,
  restoredFrom: null,
  restoreNote: null,
  ...over,
});
const fresh = (): { states: Map<string, SessionState>; schedules: Map<string, ScheduleInfo> } => ({ states: new Map(), schedules: new Map() });

describe('notice rules', () => {
  it('a session of this machine that goes from running to exited is said once, with how it ended', () => {
    const known = fresh();
    expect(noticeFor({ event: 'session.added', session: session('running') }, known, false)).toBeNull();
    const ended: ApiEvent = { event: 'session.changed', session: session('exited') };
    expect(noticeFor(ended, known, false)).toEqual({ title: '“build” ended', body: 'make: exit status 2.', tag: 'ended-s1' });
    expect(noticeFor(ended, known, false)).toBeNull(); // told again: not said again
    // One listed as exited already, or a peer's session: nothing.
    expect(noticeFor({ event: 'session.changed', session: session('exited', { id: 's2' }) }, fresh(), false)).toBeNull();
    const remote = fresh();
    noticeFor({ event: 'session.added', session: session('running', { peer: { id: 'p', name: 'beta' } }) }, remote, false);
    expect(noticeFor({ event: 'session.changed', session: session('exited', { peer: { id: 'p', name: 'beta' } }) }, remote, false)).toBeNull();
    // Moved away is not an end.
    const moved = fresh();
    noticeFor({ event: 'session.added', session: session('running') }, moved, false);
    noticeFor({ event: 'session.moved', id: 's1', to: 'x@p', peer: { id: 'p', name: 'beta' } }, moved, false);
    expect(moved.states.has('s1')).toBe(false);
  });

  it('a pairing request names the machine and the code; schedules only where asked (a browser)', () => {
    const peer = { id: 'p1', name: 'laptop' } as PeerInfo;
    expect(noticeFor({ event: 'pair.requested', peer, code: '123456' }, fresh(), false)).toEqual({
      title: 'laptop wants to pair with this machine',
      body: 'Open vOS and compare the code: 123456.',
      tag: 'pair-p1',
    });
    const schedule: ScheduleInfo = { session: 's1', name: 'build', everyMs: 60_000, keep: 3, nextRunAt: 1, paused: null, last: { at: 2, ok: false, error: 'disk full' } };
    expect(noticeFor({ event: 'schedule.changed', schedule }, fresh(), false)).toBeNull();
    expect(noticeFor({ event: 'schedule.changed', schedule }, fresh(), true)).toMatchObject({ title: 'A scheduled checkpoint of “build” failed', tag: 'schedule-s1' });
  });
});
