/**
 * The tray menu as data (shell/tray-menu.ts): what it offers in each state of the agent, and the
 * question asked before ending every session. Electron only draws this model (shell/tray.ts).
 */
import { describe, expect, it } from 'vitest';
import type { AgentInfo, SessionInfo } from '../../src-main/api/protocol.js';
import type { SupervisorState } from '../../src-main/client/agent-supervisor.js';
import { endSessionsConfirmation, trayMenuModel, type TrayItem } from '../../src-main/shell/tray-menu.js';

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

/** label → enabled/action, separators as '—'. */
const view = (items: TrayItem[]): string[] => items.map((i) => (i.type === 'separator' ? '—' : `${i.label}${i.enabled ? '' : ' [off]'}${i.action ? ` → ${i.action}` : ''}`));

describe('tray menu model', () => {
  it('with the agent running: sessions counted (this machine, running only), both ways to quit', () => {
    const running: SupervisorState = { kind: 'running', agent, startedHere: true };
    const sessions = [session('a', 'running'), session('b', 'running'), session('c', 'exited'), session('d@p', 'running', { id: 'p', name: 'other' })];
    expect(view(trayMenuModel({ agent: running, sessions }))).toEqual([
      'Show vOS → show',
      'New Session… → new-session',
      '—',
      'Agent: running (pid 4242) [off]',
      '2 sessions running [off]',
      '—',
      'Quit vOS (sessions keep running) → quit',
      'Quit and end all sessions (2)… → quit-end-sessions',
    ]);
  });

  it('while the agent restarts: nothing that needs it is offered', () => {
    const items = view(trayMenuModel({ agent: { kind: 'restarting', reason: 'x', attempt: 2, delayMs: 500 }, sessions: [] }));
    expect(items).toContain('New Session… [off] → new-session');
    expect(items).toContain('Agent: stopped, restarting (attempt 2)… [off]');
    expect(items).toContain('Quit and end all sessions… [off] → quit-end-sessions');
    expect(items).toContain('Quit vOS (sessions keep running) → quit');
  });

  it('after giving up: offers to start the agent again', () => {
    const items = view(trayMenuModel({ agent: { kind: 'failed', reason: 'too many' }, sessions: [] }));
    expect(items).toContain('Agent: not running (gave up restarting it) [off]');
    expect(items).toContain('Start the agent again → retry-agent');
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
