/** "Start vOS in the tray at login": the XDG autostart entry the app writes and removes. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { appCommand, autostartEnabled, autostartEntry, autostartFile, setAutostart, TRAY_ARG } from '../../src-main/shell/autostart.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('autostart', () => {
  it('writes the entry under XDG_CONFIG_HOME when turned on, and removes it when turned off', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vos-autostart-'));
    dirs.push(dir);
    const env = { XDG_CONFIG_HOME: join(dir, 'config') };
    const file = autostartFile(env);
    expect(file).toBe(join(dir, 'config', 'autostart', 'vos.desktop'));
    expect(autostartEnabled(env)).toBe(false);
    setAutostart(true, ['/opt/vOS/vos-app'], env);
    const text = readFileSync(file, 'utf8');
    expect(text).toMatch(/^\[Desktop Entry\]\n/);
    expect(text).toContain(`Exec=/opt/vOS/vos-app ${TRAY_ARG}\n`);
    expect(text).toContain('Type=Application\n');
    expect(autostartEnabled(env)).toBe(true);
    setAutostart(false, ['/opt/vOS/vos-app'], env);
    expect(existsSync(file)).toBe(false);
    expect(autostartEnabled(env)).toBe(false);
    setAutostart(false, ['/opt/vOS/vos-app'], env); // off twice is fine
  });

  it('quotes an Exec word as the Desktop Entry Specification says', () => {
    const text = autostartEntry(['/home/a b/.local/vOS.AppImage', '100%']);
    expect(text).toContain(`Exec="/home/a b/.local/vOS.AppImage" "100%%" ${TRAY_ARG}\n`);
  });

  it.skipIf(spawnSync('desktop-file-validate', ['--help']).status !== 0)('passes desktop-file-validate', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vos-autostart-'));
    dirs.push(dir);
    const env = { XDG_CONFIG_HOME: dir };
    setAutostart(true, ['/opt/vOS/vos-app'], env);
    const r = spawnSync('desktop-file-validate', [autostartFile(env)], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });

  it('starts what was started: the AppImage file, the packaged executable, or Electron with the checkout', () => {
    const packaged = { isPackaged: true, execPath: '/opt/vOS/vos-app', appPath: '/opt/vOS/resources/app.asar' };
    // An AppImage: its executable lives in a mount that is gone after it ends; $APPIMAGE is the file.
    expect(appCommand({ ...packaged, execPath: '/tmp/.mount_vOSabc/vos-app', env: { APPIMAGE: '/home/a/Apps/vOS-0.1.0.AppImage' } })).toEqual([
      '/home/a/Apps/vOS-0.1.0.AppImage',
    ]);
    // The .deb (and any packaged app not run as an AppImage): the executable alone.
    expect(appCommand({ ...packaged, env: {} })).toEqual(['/opt/vOS/vos-app']);
    expect(appCommand({ ...packaged, env: { APPIMAGE: '' } })).toEqual(['/opt/vOS/vos-app']);
    expect(appCommand({ ...packaged, env: { APPIMAGE: 'relative.AppImage' } })).toEqual(['/opt/vOS/vos-app']);
    // A checkout: Electron's binary and the app's folder, even when an AppImage's $APPIMAGE was
    // inherited (npm start typed in a session of the AppImage).
    const checkout = { isPackaged: false, execPath: '/src/vos/node_modules/electron/dist/electron', appPath: '/src/vos' };
    expect(appCommand({ ...checkout, env: {} })).toEqual(['/src/vos/node_modules/electron/dist/electron', '/src/vos']);
    expect(appCommand({ ...checkout, env: { APPIMAGE: '/home/a/Apps/vOS.AppImage' } })).toEqual(['/src/vos/node_modules/electron/dist/electron', '/src/vos']);
    // And the entry starts it in the tray.
    expect(autostartEntry(appCommand({ ...checkout, env: {} }))).toContain(`Exec=/src/vos/node_modules/electron/dist/electron /src/vos ${TRAY_ARG}\n`);
  });
});
