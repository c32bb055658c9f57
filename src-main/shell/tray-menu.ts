/**
 * The tray menu as data: what it shows for the agent's state and the sessions, built by a pure
 * function so it can be tested without Electron (tray.ts turns it into Electron's menu). Each
 * running session of this machine gets a "Checkpoint every…" submenu (its period as a radio
 * choice, "Checkpoint now", its last result and why it is paused); the tooltip says when
 * scheduled checkpoints failed or paused. A checkbox turns starting vOS in the tray at login on
 * and off (shell/autostart.ts). Also the text of the confirmation before "Quit and end all
 * sessions".
 */
import { SHIPPED_SCHEDULE_DEFAULT, type ScheduleInfo, type SessionInfo } from '../api/protocol.js';
import { PERIOD_CHOICES, clockTime, periodText, runText, scheduleProblem } from '../api/schedule-text.js';
import type { SupervisorState } from '../client/agent-supervisor.js';

export type TrayAction =
  | 'show'
  | 'new-session'
  | 'retry-agent'
  | 'quit'
  | 'quit-end-sessions'
  /** schedule.set (everyMs a period; it resumes a paused schedule) or schedule.off (null). */
  | { type: 'schedule'; session: string; everyMs: number | null; keep: number }
  /** session.checkpoint into the store. */
  | { type: 'checkpoint-now'; session: string }
  /** Write (enabled) or remove the autostart entry: the checkbox's new state. */
  | { type: 'start-at-login'; enabled: boolean };

/**
 * An item that shows a state: a radio item (one of a group, the checked one is the current
 * choice) or a checkbox (a setting, on or off).
 */
export interface TrayCheck {
  kind: 'radio' | 'checkbox';
  checked: boolean;
}

export type TrayMenuItem = { type: 'item'; label: string; enabled: boolean; action?: TrayAction; submenu?: TrayItem[]; check?: TrayCheck };

export type TrayItem = { type: 'separator' } | TrayMenuItem;

export interface TrayInput {
  agent: SupervisorState;
  /** The agent's sessions as last listed (this machine's only; others' are ignored). */
  sessions: SessionInfo[];
  /** The sessions' checkpoint schedules as last listed or changed (any order; others ignored). */
  schedules: ScheduleInfo[];
  /** Whether the autostart entry is there: vOS starts in the tray at login. */
  startAtLogin: boolean;
}

const item = (label: string, action?: TrayAction, enabled = true): TrayMenuItem => ({ type: 'item', label, enabled, ...(action ? { action } : {}) });
const note = (label: string): TrayItem => item(label, undefined, false);
const SEPARATOR: TrayItem = { type: 'separator' };
/** Sessions beyond this many have their schedule in the app only (a menu must stay usable). */
const MAX_SCHEDULE_MENUS = 12;
/** Longest reason shown in a menu line (the app and `vos schedule` have the whole of it). */
const MAX_LINE = 90;

/** The setting's label (shell/autostart.ts writes the entry). */
export const START_AT_LOGIN = 'Start vOS in the tray at login';

const line = (text: string): string => (text.length > MAX_LINE ? `${text.slice(0, MAX_LINE - 1)}…` : text);

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

/** The running sessions of this machine with their schedules (null while not listed yet). */
function withSchedules(input: TrayInput): { session: SessionInfo; schedule: ScheduleInfo | null }[] {
  const byId = new Map(input.schedules.map((s) => [s.session, s]));
  return runningHere(input.sessions).map((session) => ({ session, schedule: byId.get(session.id) ?? null }));
}

/** What is wrong with scheduled checkpoints, in a few words ("1 checkpoint failed, 1 schedule paused"), or null. */
export function scheduleTrouble(input: TrayInput): string | null {
  let failed = 0;
  let paused = 0;
  for (const { schedule } of withSchedules(input)) {
    const problem = schedule ? scheduleProblem(schedule) : null;
    if (problem === 'failed') failed++;
    else if (problem === 'paused') paused++;
  }
  const parts = [failed ? `${plural(failed, 'checkpoint')} failed` : '', paused ? `${plural(paused, 'schedule')} paused` : ''].filter(Boolean);
  return parts.length ? parts.join(', ') : null;
}

/** The tray icon's tooltip. */
export function trayTooltip(input: TrayInput): string {
  const trouble = input.agent.kind === 'running' ? scheduleTrouble(input) : null;
  return trouble ? `vOS: ${trouble}` : 'vOS';
}

/** A session's "Checkpoint every…" submenu. */
function scheduleMenu(session: SessionInfo, schedule: ScheduleInfo | null): TrayItem {
  const problem = schedule ? scheduleProblem(schedule) : null;
  const label = `${session.name} — Checkpoint every…${problem ? ` (${problem})` : ''}`;
  if (!session.pod) {
    return { ...item(label), submenu: [note('Cannot be checkpointed: it does not run in a pod')] };
  }
  const id = session.id;
  const keep = schedule?.keep ?? SHIPPED_SCHEDULE_DEFAULT.keep;
  const current = schedule?.everyMs ?? null;
  const radio = (text: string, everyMs: number | null): TrayItem => ({
    ...item(text, { type: 'schedule', session: id, everyMs, keep }),
    // Nothing checked until the schedule is known.
    check: { kind: 'radio', checked: schedule !== null && current === everyMs },
  });
  const submenu: TrayItem[] = PERIOD_CHOICES.map((c) => radio(c.label, c.everyMs));
  if (current !== null && !PERIOD_CHOICES.some((c) => c.everyMs === current)) {
    submenu.push(radio(`${periodText(current)} (set in the app or vos schedule)`, current));
  }
  const status: TrayItem[] = [];
  if (schedule?.paused) {
    status.push(note(line(`Paused: ${schedule.paused}`)));
    if (current !== null) status.push(item(`Resume (every ${periodText(current)})`, { type: 'schedule', session: id, everyMs: current, keep }));
  } else if (schedule?.nextRunAt) {
    status.push(note(`Next: at ${clockTime(schedule.nextRunAt)}`));
  }
  if (schedule?.last) status.push(note(line(`Last, at ${clockTime(schedule.last.at)}: ${runText(schedule.last)}`)));
  if (!schedule) status.push(note('Schedule: not known yet'));
  submenu.push(SEPARATOR, ...status, SEPARATOR, item('Checkpoint now', { type: 'checkpoint-now', session: id }));
  return { ...item(label), submenu };
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
  if (running && count > 0) {
    const trouble = scheduleTrouble(input);
    if (trouble) items.push(note(trouble));
    const shown = withSchedules(input).sort((a, b) => a.session.name.localeCompare(b.session.name));
    items.push(SEPARATOR, ...shown.slice(0, MAX_SCHEDULE_MENUS).map((x) => scheduleMenu(x.session, x.schedule)));
    if (shown.length > MAX_SCHEDULE_MENUS) items.push(note(`${shown.length - MAX_SCHEDULE_MENUS} more: their schedules are in the app`));
  }
  items.push(
    SEPARATOR,
    // The action is the new state: Electron has already flipped the box when it runs.
    { ...item(START_AT_LOGIN, { type: 'start-at-login', enabled: !input.startAtLogin }), check: { kind: 'checkbox', checked: input.startAtLogin } },
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
