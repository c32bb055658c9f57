/**
 * The Electron main process: a client of the agent, as VS Code's window is of its pty host. The
 * agent runs as its own process (one already running for this state directory, or a `vos daemon`
 * started here, detached), kept running by the supervisor (client/agent-supervisor.ts: restarts
 * with a back-off); each window reaches it over the Unix socket through a relay
 * (client/agent-relay.ts). Sessions live under their terminal hosts, so neither the app nor the
 * agent going away ends them. Closing the window keeps the app in the tray; the tray's Quit
 * leaves the agent and the sessions running; "Quit and end all sessions" ends them, after asking.
 * The tray also sets each session's checkpoint schedule and tells of failed or paused ones
 * (tray-data.ts, api/schedule-notices.ts and tray-menu.ts decide what; this file only shows it),
 * and turns starting in the tray at login on and off (autostart.ts): started so (`--tray`), the
 * app starts the agent and the tray and opens no window until the tray's Show. The application
 * menu is app-menu.ts's, which takes no key from the terminal.
 *
 * Only the files in src-main/shell import `electron`. Everything here is thin on purpose: the
 * logic lives in client/, the core and the renderer, where it is tested.
 */
import { app, BrowserWindow, dialog, ipcMain, Menu, type WebContents } from 'electron';
import { BRIDGE_CHANNELS, type ShellCommand } from '../api/bridge.js';
import type { ClientMessage } from '../api/protocol.js';
import { formatBytes } from '../api/session-text.js';
import { resolveHome, statePaths } from '../base/state-dir.js';
import { AgentRelay } from '../client/agent-relay.js';
import { AgentSupervisor } from '../client/agent-supervisor.js';
import { aboutBox, appMenuModel, type AppMenuAction } from './app-menu.js';
import { appCommand, autostartEnabled, setAutostart, TRAY_ARG } from './autostart.js';
import { buildAppMenu } from './menu.js';
import { createTray, setTrayMenu, showNotice } from './tray.js';
import { TrayData } from './tray-data.js';
import { endSessionsConfirmation, trayMenuModel, trayTooltip, type TrayAction } from './tray-menu.js';
import { createMainWindow } from './window.js';

const log = (m: string): void => console.log(`${new Date().toISOString()} ${m}`);
const paths = statePaths(resolveHome());
const supervisor = new AgentSupervisor({
  paths,
  clientName: 'electron-shell',
  // The Electron binary runs the agent as plain Node.
  launch: { execPath: process.execPath, env: { ELECTRON_RUN_AS_NODE: '1' } },
  log,
});
let window: BrowserWindow | null = null;
let quitting = false;
const relays = new Map<WebContents, AgentRelay>();
/** The agent's sessions and schedules, for the tray (kept by session.watch on the supervisor's connection). */
const trayData = new TrayData();

function refreshTray(): void {
  const input = trayData.input(supervisor.state);
  setTrayMenu(trayMenuModel(input), trayTooltip(input), (a) => void act(a));
}

supervisor.onChange((state) => {
  trayData.reset();
  refreshTray();
  const client = supervisor.client;
  if (state.kind !== 'running' || !client) return;
  client.onEvent((e) => {
    const { changed, notice } = trayData.apply(e);
    if (notice) showNotice(notice);
    if (changed) refreshTray();
  });
  client
    .request('session.watch', {})
    .then((list) => {
      trayData.listedSessions(list);
      refreshTray();
      return client.request('schedule.list', {});
    })
    .then(
      (list) => {
        trayData.listedSchedules(list.schedules);
        refreshTray();
      },
      (err: unknown) => log(`cannot watch the sessions and their schedules: ${String(err)}`),
    );
});

/** Whether the autostart entry is there (an entry that cannot be read counts as none). */
function readStartAtLogin(): boolean {
  try {
    return autostartEnabled();
  } catch {
    return false;
  }
}

/** The tray's checkbox: writes or removes the autostart entry; a failure is a notification. */
function setStartAtLogin(enabled: boolean): void {
  try {
    setAutostart(enabled, appCommand({ isPackaged: app.isPackaged, execPath: process.execPath, appPath: app.getAppPath(), env: process.env }));
  } catch (err) {
    showNotice({
      title: enabled ? 'Could not set vOS to start at login' : 'Could not stop vOS starting at login',
      body: err instanceof Error ? err.message : String(err),
    });
  }
  trayData.startAtLogin = readStartAtLogin();
  refreshTray(); // the box Electron flipped by itself shows what is so
}

/** The tray's own actions on a session's checkpoints; the outcome is said in a notification. */
async function scheduleAction(action: Extract<TrayAction, { session: string }>): Promise<void> {
  const client = supervisor.client;
  const name = trayData.session(action.session)?.name ?? action.session;
  try {
    if (!client) throw new Error('the agent is not running');
    if (action.type === 'checkpoint-now') {
      const r = await client.request('session.checkpoint', { id: action.session });
      showNotice({ title: `Checkpoint of “${name}” written`, body: `${formatBytes(r.bytes)}, image ${r.image ?? r.file}; the program was paused ${r.frozenMs} ms.` });
    } else if (action.everyMs === null) {
      await client.request('schedule.off', { session: action.session });
    } else {
      await client.request('schedule.set', { session: action.session, everyMs: action.everyMs, keep: action.keep });
    }
  } catch (err) {
    const what = action.type === 'checkpoint-now' ? 'The checkpoint' : 'Changing the schedule';
    showNotice({ title: `${what} of “${name}” failed`, body: err instanceof Error ? err.message : String(err) });
  }
  refreshTray(); // a radio item Electron checked by itself goes back if nothing changed
}

function showWindow(command?: ShellCommand): void {
  if (!window || window.isDestroyed()) {
    window = createMainWindow();
    window.on('close', (e) => {
      if (!quitting) {
        e.preventDefault();
        window?.hide();
      }
    });
  }
  window.show();
  window.focus();
  if (command) window.webContents.send(BRIDGE_CHANNELS.shellCommand, command);
}

/** Quits the app; the agent and its sessions go on (the next start of the app finds them). */
function quit(): void {
  quitting = true;
  for (const relay of relays.values()) relay.close();
  supervisor.stop();
  app.quit();
}

async function quitAndEndSessions(): Promise<void> {
  const question = endSessionsConfirmation(trayData.input(supervisor.state).sessions);
  const { response, checkboxChecked } = await dialog.showMessageBox({ type: 'warning', title: 'vOS', ...question });
  if (response === question.cancelId) return;
  try {
    const { failed } = await supervisor.endSessionsAndStopAgent(checkboxChecked ? 60_000 : 20_000, checkboxChecked);
    if (failed.length) {
      dialog.showErrorBox('vOS', `Some sessions could not be ended:\n${failed.map((f) => `${f.id}: ${f.reason}`).join('\n')}`);
    }
  } catch (err) {
    dialog.showErrorBox('vOS', `Ending the sessions failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  quit();
}

async function act(action: TrayAction): Promise<void> {
  if (typeof action !== 'string') {
    if (action.type === 'start-at-login') return setStartAtLogin(action.enabled);
    return scheduleAction(action);
  }
  switch (action) {
    case 'show':
      return showWindow();
    case 'new-session':
      return showWindow('new-session');
    case 'retry-agent':
      return supervisor.retry();
    case 'quit':
      return quit();
    case 'quit-end-sessions':
      return quitAndEndSessions();
  }
}

/** The application menu's items. */
function menuAction(action: AppMenuAction): void {
  const win = window && !window.isDestroyed() ? window : null;
  switch (action) {
    case 'hide-window':
      return win?.hide();
    case 'quit':
      return quit();
    case 'toggle-full-screen':
      return win?.setFullScreen(!win.isFullScreen());
    case 'toggle-dev-tools':
      return win?.webContents.toggleDevTools();
    case 'about': {
      const box = aboutBox({ app: app.getVersion(), electron: process.versions.electron, chrome: process.versions.chrome, node: process.versions.node });
      void (win ? dialog.showMessageBox(win, { type: 'info', ...box }) : dialog.showMessageBox({ type: 'info', ...box }));
      return;
    }
  }
}

ipcMain.on(BRIDGE_CHANNELS.connect, (event) => {
  const contents = event.sender;
  relays.get(contents)?.close();
  const relay = new AgentRelay(
    () => supervisor.openTransport(),
    (message) => {
      if (!contents.isDestroyed()) contents.send(BRIDGE_CHANNELS.fromAgent, message);
    },
  );
  relays.set(contents, relay);
  contents.once('destroyed', () => {
    relay.close();
    if (relays.get(contents) === relay) relays.delete(contents);
  });
});

ipcMain.on(BRIDGE_CHANNELS.toAgent, (event, message: unknown) => {
  // The agent checks every message (api/validate.ts); the relay only carries them.
  relays.get(event.sender)?.receive(message as ClientMessage);
});

if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  // The autostart entry of a user who already has vOS open starts it again: nothing to show then.
  app.on('second-instance', (_event, argv) => {
    if (!argv.includes(TRAY_ARG)) showWindow();
  });
  app.on('window-all-closed', () => {
    /* stay in the tray */
  });
  app.on('before-quit', () => {
    quitting = true;
  });
  app
    .whenReady()
    .then(() => {
      // Before the first window: it replaces Electron's default menu (a browser's keys).
      Menu.setApplicationMenu(buildAppMenu(appMenuModel({ devTools: !app.isPackaged }), menuAction));
      trayData.startAtLogin = readStartAtLogin();
      createTray(() => showWindow());
      refreshTray();
      // Started at login (the autostart entry): the tray only; its Show opens the window.
      if (!process.argv.includes(TRAY_ARG)) showWindow();
      // The window shows the connection's state meanwhile, and the reason if it fails.
      supervisor.start().catch((err: unknown) => log(`no agent: ${String(err)}`));
    })
    .catch((err: unknown) => {
      log(`vOS could not start: ${String(err)}`);
      app.exit(1);
    });
}
