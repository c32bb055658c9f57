/**
 * The Electron main process: a client of the agent, as VS Code's window is of its pty host. The
 * agent runs as its own process (one already running for this state directory, or a `vos daemon`
 * started here, detached), kept running by the supervisor (client/agent-supervisor.ts: restarts
 * with a back-off); each window reaches it over the Unix socket through a relay
 * (client/agent-relay.ts). Sessions live under their terminal hosts, so neither the app nor the
 * agent going away ends them. Closing the window keeps the app in the tray; the tray's Quit
 * leaves the agent and the sessions running; "Quit and end all sessions" ends them, after asking.
 *
 * Only the files in src-main/shell import `electron`. Everything here is thin on purpose: the
 * logic lives in client/, the core and the renderer, where it is tested.
 */
import { app, BrowserWindow, dialog, ipcMain, type WebContents } from 'electron';
import { BRIDGE_CHANNELS, type ShellCommand } from '../api/bridge.js';
import type { ClientMessage, SessionInfo } from '../api/protocol.js';
import { resolveHome, statePaths } from '../base/state-dir.js';
import { AgentRelay } from '../client/agent-relay.js';
import { AgentSupervisor } from '../client/agent-supervisor.js';
import { createTray, setTrayMenu } from './tray.js';
import { endSessionsConfirmation, trayMenuModel, type TrayAction } from './tray-menu.js';
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
/** The agent's sessions, for the tray (kept by session.watch on the supervisor's connection). */
let sessions = new Map<string, SessionInfo>();

function refreshTray(): void {
  setTrayMenu(trayMenuModel({ agent: supervisor.state, sessions: [...sessions.values()] }), (a) => void act(a));
}

supervisor.onChange((state) => {
  sessions = new Map();
  refreshTray();
  const client = supervisor.client;
  if (state.kind !== 'running' || !client) return;
  client.onEvent((e) => {
    if (e.event === 'session.added' || e.event === 'session.changed') sessions.set(e.session.id, e.session);
    else if (e.event === 'session.removed') sessions.delete(e.id);
    else return;
    refreshTray();
  });
  client.request('session.watch', {}).then(
    (list) => {
      for (const s of list) sessions.set(s.id, s);
      refreshTray();
    },
    (err: unknown) => log(`cannot watch the sessions: ${String(err)}`),
  );
});

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
  const question = endSessionsConfirmation([...sessions.values()]);
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
  app.on('second-instance', () => showWindow());
  app.on('window-all-closed', () => {
    /* stay in the tray */
  });
  app.on('before-quit', () => {
    quitting = true;
  });
  app
    .whenReady()
    .then(() => {
      createTray(() => showWindow());
      refreshTray();
      showWindow();
      // The window shows the connection's state meanwhile, and the reason if it fails.
      supervisor.start().catch((err: unknown) => log(`no agent: ${String(err)}`));
    })
    .catch((err: unknown) => {
      log(`vOS could not start: ${String(err)}`);
      app.exit(1);
    });
}
