/**
 * "Start vOS in the tray at login": an XDG autostart entry (~/.config/autostart/vos.desktop, or
 * under $XDG_CONFIG_HOME) that the desktop runs at login, written when the user turns the setting
 * on and removed when they turn it off. No Electron here: the shell passes what to run.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';

/** The argument the app is started with from the autostart entry: straight to the tray. */
export const TRAY_ARG = '--tray';

export function autostartFile(env: NodeJS.ProcessEnv = process.env): string {
  const config = env.XDG_CONFIG_HOME ? resolve(env.XDG_CONFIG_HOME) : join(homedir(), '.config');
  return join(config, 'autostart', 'vos.desktop');
}

/** What the shell knows about how it was started (Electron's `app` and `process`), for {@link appCommand}. */
export interface AppStart {
  /** `app.isPackaged`. */
  isPackaged: boolean;
  /** `process.execPath`: the app's executable (Electron's binary in a checkout). */
  execPath: string;
  /** `app.getAppPath()`: the checkout (or app.asar) Electron loaded. */
  appPath: string;
  env: NodeJS.ProcessEnv;
}

/**
 * The command that starts this app again, for the autostart entry: the AppImage file itself when
 * running as one (`$APPIMAGE`: the executable is inside its mount, gone when it ends); the
 * executable of a packaged app (the .deb's /opt/vOS/vos-app); and in a checkout Electron's binary
 * with the checkout. `$APPIMAGE` counts only in a packaged app: a program started from a session
 * of the AppImage inherits it, and so would `npm start` run in one.
 */
export function appCommand(start: AppStart): string[] {
  const appImage = start.env.APPIMAGE;
  if (start.isPackaged && appImage && isAbsolute(appImage)) return [appImage];
  if (start.isPackaged) return [start.execPath];
  return [start.execPath, start.appPath];
}

/** A desktop entry's Exec= word: quoted as the Desktop Entry Specification says when needed. */
function execWord(word: string): string {
  if (/^[A-Za-z0-9_@+=:,./-]+$/.test(word)) return word;
  return `"${word.replace(/[\\"`$]/g, (c) => `\\\\${c}`).replace(/%/g, '%%')}"`;
}

/** The entry's text: `command` (the app's executable, and its arguments if any) started in the tray. */
export function autostartEntry(command: string[]): string {
  return `[Desktop Entry]
Type=Application
Name=vOS
Comment=Keep terminal programs running and move them between your machines (starts in the tray)
Exec=${[...command, TRAY_ARG].map(execWord).join(' ')}
Icon=vos
Terminal=false
X-GNOME-Autostart-enabled=true
`;
}

/** Turns starting at login on (writes the entry for `command`) or off (removes it). */
export function setAutostart(enabled: boolean, command: string[], env: NodeJS.ProcessEnv = process.env): void {
  const file = autostartFile(env);
  if (!enabled) {
    rmSync(file, { force: true });
    return;
  }
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, autostartEntry(command), { mode: 0o644 });
}

/** Whether the entry is there and ours (it names the tray argument). */
export function autostartEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  const file = autostartFile(env);
  return existsSync(file) && readFileSync(file, 'utf8').includes(TRAY_ARG);
}
