/**
 * The tray menu as data (shell/tray-menu.ts): what it offers in each state of the agent, each
 * running session's "Checkpoint every…" submenu and the tooltip when scheduled checkpoints fail,
 * and the question asked before ending every session. Electron only draws this model (shell/tray.ts).
 */
import { describe, expect, it } from 'vitest';
import type { AgentInfo, ScheduleInfo, SessionInfo } from '../../src-main/api/protocol.js';
import { clockTime } from '../../src-main/api/schedule-text.js';
import type { SupervisorState } from '../../src-main/client/agent-supervisor.js';
import { endSessionsConfirmation, START_AT_LOGIN, trayMenuModel, trayTooltip, type TrayAction, type TrayItem, type TrayMenuItem } from '../../src-main/shell/tray-menu.js';

const agent = { pid: 4242, name: 'box' } as AgentInfo;
const session = (id: string, state: SessionInfo['state'], peer: SessionInfo['peer'] = null): SessionInfo => ({
  id,
  name: `s-${id}`,
  command: 'bash',
  args: [],
  cwd: '/',
  pid: 100,
  startedAt: 0,
  endedAt: state === 'running' ? null : 1,
  state,
  exit: state === 'running' ? null : { code: 0, signal: null },
  cols: 80,
  rows: 24,
  viewers: 0,
  pod: true,
  restoredFrom: null,
  restoreNote: null,
  peer,
});

const schedule = (id: string, over: Partial<ScheduleInfo> = {}): ScheduleInfo => ({
  session: id,
  name: `s-${id}`,
  everyMs: 15 * 60_000,
  keep: 3,
  nextRunAt: null,
  paused: null,
  last: null,
  ...over,
});

const actionText = (a: TrayAction): string => {
  if (typeof a === 'string') return a;
  switch (a.type) {
    case 'checkpoint-now':
      return `checkpoint ${a.session}`;
    case 'schedule':
      return `schedule ${a.session} ${a.everyMs ?? 'off'} keep ${a.keep}`;
    case 'start-at-login':
      return `start-at-login ${a.enabled ? 'on' : 'off'}`;
  }
};

/** A radio item as (•)/( ), a checkbox as [x]/[ ]. */
const checkText = (i: TrayMenuItem): string => {
  if (!i.check) return '';
  if (i.check.kind === 'radio') return i.check.checked ? '(•) ' : '( ) ';
  return i.check.checked ? '[x] ' : '[ ] ';
};

/** label → enabled/radio/checkbox/action, separators as '—'. */
const view = (items: TrayItem[]): string[] =>
  items.map((i) => (i.type === 'separator' ? '—' : `${checkText(i)}${i.label}${i.enabled ? '' : ' [off]'}${i.action ? ` → ${actionText(i.action)}` : ''}`));

const submenu = (items: TrayItem[], label: string): TrayItem[] => {
  const found = items.find((i) => i.type === 'item' && i.label.startsWith(label));
  if (!found || found.type !== 'item' || !found.submenu) throw new Error(`no submenu ${label}`);
  return found.submenu;
};

describe('tray menu model', () => {
  it('with the agent running: sessions counted (this machine, running only), both ways to quit', () => {
    const running: SupervisorState = { kind: 'running', agent, startedHere: true };
    const sessions = [session('a', 'running'), session('b', 'running'), session('c', 'exited'), session('d@p', 'running', { id: 'p', name: 'other' })];
    expect(view(trayMenuModel({ agent: running, sessions, schedules: [], startAtLogin: false }))).toEqual([
      'Show vOS → show',
      'New Session… → new-session',
      '—',
      'Agent: running (pid 4242) [off]',
      '2 sessions running [off]',
      '—',
      's-a — Checkpoint every…',
      's-b — Checkpoint every…',
      '—',
      '[ ] Start vOS in the tray at login → start-at-login on',
      '—',
      'Quit vOS (sessions keep running) → quit',
      'Quit and end all sessions (2)… → quit-end-sessions',
    ]);
  });

  it('while the agent restarts: nothing that needs it is offered', () => {
    const items = view(trayMenuModel({ agent: { kind: 'restarting', reason: 'x', attempt: 2, delayMs: 500 }, sessions: [], schedules: [], startAtLogin: false }));
    expect(items).toContain('New Session… [off] → new-session');
    expect(items).toContain('Agent: stopped, restarting (attempt 2)… [off]');
    expect(items).toContain('Quit and end all sessions… [off] → quit-end-sessions');
    expect(items).toContain('Quit vOS (sessions keep running) → quit');
  });

  it('after giving up: offers to start the agent again', () => {
    const items = view(trayMenuModel({ agent: { kind: 'failed', reason: 'too many' }, sessions: [], schedules: [], startAtLogin: false }));
    expect(items).toContain('Agent: not running (gave up restarting it) [off]');
    expect(items).toContain('Start the agent again → retry-agent');
  });

  it("each session's submenu: its period checked, the choices as schedule.set/off, next run, last result, checkpoint now", () => {
    const running: SupervisorState = { kind: 'running', agent, startedHere: true };
    const next = Date.UTC(2026, 0, 1, 10, 0, 0);
    const at = next - 15 * 60_000;
    const items = trayMenuModel({
      agent: running,
      sessions: [session('a', 'running')],
      schedules: [schedule('a', { nextRunAt: next, last: { at, ok: true, image: 'abcd1234', bytes: 3 * 1024 * 1024, incremental: true } })],
      startAtLogin: false,
    });
    expect(view(submenu(items, 's-a'))).toEqual([
      '( ) Off → schedule a off keep 3',
      '( ) 5 minutes → schedule a 300000 keep 3',
      '(•) 15 minutes → schedule a 900000 keep 3',
      '( ) 1 hour → schedule a 3600000 keep 3',
      '( ) 4 hours → schedule a 14400000 keep 3',
      '—',
      `Next: at ${clockTime(next)} [off]`,
      `Last, at ${clockTime(at)}: ok, 3.0 MiB, incremental [off]`,
      '—',
      'Checkpoint now → checkpoint a',
    ]);
    expect(trayTooltip({ agent: running, sessions: [session('a', 'running')], schedules: [schedule('a')], startAtLogin: false })).toBe('vOS');
  });

  it('a period set elsewhere is its own checked choice; off checks Off; a whole image says why once', () => {
    const running: SupervisorState = { kind: 'running', agent, startedHere: true };
    const sessions = [session('a', 'running'), session('b', 'running')];
    const items = trayMenuModel({
      agent: running,
      sessions,
      schedules: [
        schedule('a', { everyMs: 90_000, keep: 5, last: { at: 1, ok: true, bytes: 100, incremental: false, fullReason: 'no write tracking on this kernel' } }),
        schedule('b', { everyMs: null }),
      ],
      startAtLogin: false,
    });
    const a = view(submenu(items, 's-a'));
    expect(a.filter((l) => l.startsWith('(•)'))).toEqual(['(•) 90 seconds (set in the app or vos schedule) → schedule a 90000 keep 5']);
    expect(a).toContain(`Last, at ${clockTime(1)}: ok, 100 B, whole image (no write tracking on this kernel) [off]`);
    expect(view(submenu(items, 's-b')).filter((l) => l.startsWith('(•)'))).toEqual(['(•) Off → schedule b off keep 3']);
  });

  it('a paused or failed schedule: the reason greyed, Resume, marked in its label, a line and the tooltip', () => {
    const running: SupervisorState = { kind: 'running', agent, startedHere: true };
    const sessions = [session('a', 'running'), session('b', 'running'), session('c', 'running')];
    const reason = 'the pod has a SysV message queue (key 0, id 0), which vOS cannot carry yet: end the program that made it first';
    const input = {
      agent: running,
      sessions,
      schedules: [
        schedule('a', { everyMs: 1000, paused: reason, last: { at: 5, ok: false, error: reason } }),
        schedule('b', { last: { at: 6, ok: false, error: 'no space left on device' } }),
        // Skipped (a manual checkpoint was under way): no failure.
        schedule('c', { last: { at: 7, ok: false, skipped: true, error: 'skipped: a manual checkpoint of the session was under way' } }),
      ],
      startAtLogin: false,
    };
    const items = trayMenuModel(input);
    const labels = view(items);
    expect(labels).toContain('1 checkpoint failed, 1 schedule paused [off]');
    expect(labels).toContain('s-a — Checkpoint every… (paused)');
    expect(labels).toContain('s-b — Checkpoint every… (failed)');
    expect(labels).toContain('s-c — Checkpoint every…');
    const a = view(submenu(items, 's-a'));
    // A long reason is cut in the menu (the app and vos schedule have all of it).
    expect(a).toContain(`${`Paused: ${reason}`.slice(0, 89)}… [off]`);
    expect(a).toContain('Resume (every 1 second) → schedule a 1000 keep 3');
    expect(view(submenu(items, 's-b'))).toContain(`Last, at ${clockTime(6)}: failed: no space left on device [off]`);
    expect(view(submenu(items, 's-c'))).toContain(`Last, at ${clockTime(7)}: skipped: a manual checkpoint of the session was under way [off]`);
    expect(trayTooltip(input)).toBe('vOS: 1 checkpoint failed, 1 schedule paused');
  });

  it('a session without a pod says it cannot be checkpointed; another machine\'s sessions get no submenu', () => {
    const running: SupervisorState = { kind: 'running', agent, startedHere: true };
    const items = trayMenuModel({
      agent: running,
      sessions: [{ ...session('a', 'running'), pod: false }, session('r@p', 'running', { id: 'p', name: 'other' })],
      schedules: [],
      startAtLogin: false,
    });
    expect(view(submenu(items, 's-a'))).toEqual(['Cannot be checkpointed: it does not run in a pod [off]']);
    expect(view(items).some((l) => l.startsWith('s-r@p'))).toBe(false);
  });

  it('starting in the tray at login: a checkbox showing the setting, whose action is the other state, in every state of the agent', () => {
    const states: SupervisorState[] = [
      { kind: 'running', agent, startedHere: true },
      { kind: 'starting' },
      { kind: 'restarting', reason: 'x', attempt: 1, delayMs: 250 },
      { kind: 'failed', reason: 'too many' },
    ];
    for (const state of states) {
      const off = trayMenuModel({ agent: state, sessions: [], schedules: [], startAtLogin: false });
      const on = trayMenuModel({ agent: state, sessions: [], schedules: [], startAtLogin: true });
      expect(view(off).filter((l) => l.includes('at login')), state.kind).toEqual(['[ ] Start vOS in the tray at login → start-at-login on']);
      expect(view(on).filter((l) => l.includes('at login')), state.kind).toEqual(['[x] Start vOS in the tray at login → start-at-login off']);
      const item = on.find((i): i is TrayMenuItem => i.type === 'item' && i.label === START_AT_LOGIN);
      expect(item?.check).toEqual({ kind: 'checkbox', checked: true });
      expect(item?.action).toEqual({ type: 'start-at-login', enabled: false });
      expect(item?.enabled).toBe(true);
    }
    // The schedules' choices stay radio items.
    const items = trayMenuModel({ agent: states[0]!, sessions: [session('a', 'running')], schedules: [schedule('a')], startAtLogin: true });
    const kinds = submenu(items, 's-a').flatMap((i) => (i.type === 'item' && i.check ? [i.check.kind] : []));
    expect(new Set(kinds)).toEqual(new Set(['radio']));
  });

  it('the confirmation names what ends, defaults to Cancel and points at the other Quit', () => {
    const q = endSessionsConfirmation([session('a', 'running'), session('c', 'exited')]);
    expect(q.message).toBe('End 1 running session and quit?');
    expect(q.detail).toContain('s-a (bash)');
    expect(q.detail).not.toContain('s-c');
    expect(q.detail).toContain('"Quit vOS"');
    expect(q.buttons[q.cancelId]).toBe('Cancel');
    expect(q.defaultId).toBe(q.cancelId);
    // Checkpointing first is the default: the sessions can be recovered after the quit.
    expect(q.checkboxChecked).toBe(true);
    expect(q.checkboxLabel).toMatch(/^Checkpoint them first/);
    const many = endSessionsConfirmation(Array.from({ length: 10 }, (_, i) => session(String(i), 'running')));
    expect(many.detail).toContain('and 2 more');
    expect(endSessionsConfirmation([]).message).toBe('Stop the agent and quit?');
  });
});
