/**
 * The Electron main process: hosts the agent core in-process (or, when a `vos daemon` already
 * runs for this user, relays to it), opens the window and keeps a tray icon. Closing the window
 * leaves the agent and its sessions running in the tray; Quit in the tray menu ends them.
 *
 * Only the files in src-main/shell import `electron`. Everything here is thin on purpose: the
 * logic lives in the core and the renderer, where it is tested.
 */
import { app, BrowserWindow, ipcMain, type WebContents } from 'electron';
import { VosError } from '../api/errors.js';
import { BRIDGE_CHANNELS, type ShellCommand } from '../api/bridge.js';
import type { AgentMessage } from '../api/protocol.js';
import { Agent } from '../agent/agent.js';
import { connectInProcess } from '../agent/transports/in-process.js';
import { resolveHome, statePaths } from '../base/state-dir.js';
import { openSocketTransport } from '../client/socket-transport.js';
import { createTray } from './tray.js';
import { createMainWindow } from './window.js';

interface RendererLink {
  receive(message: unknown): void;
  close(): void;
}

const paths = statePaths(resolveHome());
let agent: Agent | null = null;
let window: BrowserWindow | null = null;
let quitting = false;
const links = new Map<WebContents, RendererLink>();

const log = (m: string): void => console.log(`${new Date().toISOString()} ${m}`);

/** Hosts the agent here, unless one already runs for this state directory. */
async function startAgent(): Promise<void> {
  try {
    agent = await Agent.start({ home: paths.home, log });
  } catch (err) {
    if (err instanceof VosError && err.code === 'agent_running') {
      log(`${err.message}: the app will use that agent`);
      return;
    }
    throw err;
  }
}

async function linkRenderer(contents: WebContents): Promise<RendererLink> {
  const deliver = (message: AgentMessage): void => {
    if (!contents.isDestroyed()) contents.send(BRIDGE_CHANNELS.fromAgent, message);
  };
  if (!agent) {
    try {
      const transport = await openSocketTransport(paths.socket);
      transport.onMessage(deliver);
      transport.onClose(() => deliver({ t: 'error', error: { code: 'connection_closed', message: 'the agent went away' } }));
      return { receive: (m) => transport.send(m as Parameters<typeof transport.send>[0]), close: () => transport.close() };
    } catch (err) {
      // The agent we relayed to has gone: host one here from now on.
      if (!(err instanceof VosError && err.code === 'no_agent')) throw err;
      await startAgent();
      if (!agent) throw err;
    }
  }
  return connectInProcess(agent.dispatcher, deliver, 'electron');
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

async function quit(): Promise<void> {
  quitting = true;
  for (const link of links.values()) link.close();
  await agent?.stop();
  app.quit();
}

ipcMain.on(BRIDGE_CHANNELS.connect, (event) => {
  const contents = event.sender;
  links.get(contents)?.close();
  links.delete(contents);
  linkRenderer(contents).then(
    (link) => {
      links.set(contents, link);
      contents.once('destroyed', () => {
        link.close();
        links.delete(contents);
      });
    },
    (err: unknown) => log(`cannot connect the window to the agent: ${String(err)}`),
  );
});

ipcMain.on(BRIDGE_CHANNELS.toAgent, (event, message: unknown) => {
  links.get(event.sender)?.receive(message);
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
    .then(async () => {
      await startAgent();
      createTray({ show: () => showWindow(), newSession: () => showWindow('new-session'), quit: () => void quit() });
      showWindow();
    })
    .catch((err: unknown) => {
      log(`vOS could not start: ${String(err)}`);
      app.exit(1);
    });
}
