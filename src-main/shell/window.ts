import { app, BrowserWindow, shell } from 'electron';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resourcePath } from './resources.js';

const here = fileURLToPath(new URL('.', import.meta.url)); // out/main

export function createMainWindow(): BrowserWindow {
  const win = new BrowserWindow({
    width: 1200,
    height: 760,
    minWidth: 720,
    minHeight: 420,
    show: false,
    title: 'vOS',
    icon: resourcePath('icon.png'),
    backgroundColor: '#15171c',
    webPreferences: {
      // electron-vite emits the preload as ESM (.mjs) for a "type": "module" package; ESM
      // preloads need the sandbox off. Context isolation stays on: the page sees only the bridge.
      preload: join(here, '../preload/index.mjs'),
      sandbox: false,
      contextIsolation: true,
      nodeIntegration: false,
    },
  });
  win.once('ready-to-show', () => win.show());
  // electron-vite's dev server (npm start in a checkout). Never in a packaged app: the page
  // loaded gets the preload's bridge to the agent, so it must be the app's own.
  const devUrl = app.isPackaged ? undefined : process.env.ELECTRON_RENDERER_URL;
  // A web link clicked in a terminal opens in the desktop's browser; nothing else opens, and
  // the window never navigates away from the app (the bridge is for the app's page only).
  win.webContents.setWindowOpenHandler(({ url }) => {
    if (/^https?:\/\//i.test(url)) void shell.openExternal(url);
    return { action: 'deny' };
  });
  win.webContents.on('will-navigate', (event, url) => {
    if (!devUrl || !url.startsWith(devUrl)) event.preventDefault();
  });
  // The only zoom is the terminal's font size (Ctrl+= / Ctrl+- / Ctrl+0, in the renderer): the
  // page stays at 100%. Pinch zoom is off by Electron's default (kept off here, at every load);
  // Ctrl+wheel only asks (`zoom-changed`, which Electron leaves to the app) and is answered with
  // the page's own size. The application menu has no zoom items (app-menu.ts).
  win.webContents.on('did-finish-load', () => {
    win.webContents.setVisualZoomLevelLimits(1, 1).catch(() => undefined);
    win.webContents.setZoomLevel(0);
  });
  win.webContents.on('zoom-changed', () => win.webContents.setZoomLevel(0));
  if (devUrl) void win.loadURL(devUrl);
  else void win.loadFile(join(here, '../renderer/index.html'));
  return win;
}
