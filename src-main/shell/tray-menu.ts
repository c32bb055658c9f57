/**
 * The tray menu as data: what it shows for the agent's state and the sessions, built by a pure
 * function so it can be tested without Electron (tray.ts turns it into Electron's menu). Also the
 * text of the confirmation before "Quit and end all sessions".
 */
import type { SessionInfo } from '../api/protocol.js';
import type { SupervisorState } from '../client/agent-supervisor.js';

export type TrayAction = 'show' | 'new-session' | 'retry-agent' | 'quit' | 'quit-end-sessions';

export type TrayItem =
  | { type: 'separator' }
  | { type: 'item'; label: string; enabled: boolean; action?: TrayAction; submenu?: TrayItem[] };

export interface TrayInput {
  agent: SupervisorState;
  /** The agent's sessions as last listed (this machine's only; others' are ignored). */
  sessions: SessionInfo[];
}

const item = (label: string, action?: TrayAction, enabled = true): TrayItem => ({ type: 'item', label, enabled, ...(action ? { action } : {}) });
const SEPARATOR: TrayItem = { type: 'separator' };

export function runningHere(sessions: SessionInfo[]): SessionInfo[] {
  return sessions.filter((s) => !s.peer && s.state === 'running');
}

const plural = (n: number, one: string): string => `${n} ${one}${n === 1 ? '' : 's'}`;

/** One line about the agent, shown greyed out. */
export function agentStatusLine(agent: SupervisorState): string {
  switch (agent.kind) {
    case 'starting':
      return 'Agent: starting…';
    case 'running':
      return `Agent: running (pid ${agent.agent.pid})`;
    case 'restarting':
      return `Agent: stopped, restarting (attempt ${agent.attempt})…`;
    case 'failed':
      return 'Agent: not running (gave up restarting it)';
    case 'stopped':
      return 'Agent: left running';
  }
}

export function trayMenuModel(input: TrayInput): TrayItem[] {
  const running = input.agent.kind === 'running';
  const count = runningHere(input.sessions).length;
  const items: TrayItem[] = [
    item('Show vOS', 'show'),
    item('New Session…', 'new-session', running),
    SEPARATOR,
    item(agentStatusLine(input.agent), undefined, false),
  ];
  if (running) items.push(item(`${plural(count, 'session')} running`, undefined, false));
  if (input.agent.kind === 'failed') items.push(item('Start the agent again', 'retry-agent'));
  // (The schedule branch adds its "Checkpoint every…" submenus, one per running session, here.)
  items.push(
    SEPARATOR,
    item('Quit vOS (sessions keep running)', 'quit'),
    // Ending sessions needs the agent: without one there is nothing it could do.
    item(count > 0 ? `Quit and end all sessions (${count})…` : 'Quit and end all sessions…', 'quit-end-sessions', running),
  );
  return items;
}

/** The question asked before ending every session (Electron's showMessageBox options). */
export function endSessionsConfirmation(sessions: SessionInfo[]): {
  message: string;
  detail: string;
  buttons: string[];
  defaultId: number;
  cancelId: number;
  checkboxLabel: string;
  checkboxChecked: boolean;
} {
  const running = runningHere(sessions);
  const names = running.slice(0, 8).map((s) => `  ${s.name} (${s.command})`);
  if (running.length > names.length) names.push(`  and ${running.length - names.length} more`);
  return {
    message: running.length ? `End ${plural(running.length, 'running session')} and quit?` : 'Stop the agent and quit?',
    detail:
      (running.length
        ? `These programs are ended:\n${names.join('\n')}\n\n` +
          'Checkpointed first (the box below), each is listed as recoverable at the next start and comes back as it is now. ' +
          'Otherwise they are hung up (SIGHUP, then SIGKILL), their sessions removed, and anything they did not save is lost; ' +
          'checkpoints already in the image store stay and can be restored later.\n\n'
        : '') + 'To quit and leave the sessions running, choose "Quit vOS" instead.',
    buttons: ['Cancel', running.length ? 'End sessions and quit' : 'Quit'],
    defaultId: 0,
    cancelId: 0,
    // Checked: the agent writes a before-shutdown image of each session first (bounded in time),
    // and the next start lists them as recoverable: one "Recover" (or `vos recover --all`) each.
    checkboxLabel: 'Checkpoint them first, to recover them later (memory goes back to now; files stay as they are)',
    checkboxChecked: true,
  };
}
