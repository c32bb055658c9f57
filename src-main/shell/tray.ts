import { Menu, Notification, Tray, nativeImage, type MenuItemConstructorOptions } from 'electron';
import { resourcePath } from './resources.js';
import type { ScheduleNotice } from '../api/schedule-notices.js';
import type { TrayAction, TrayItem } from './tray-menu.js';

let tray: Tray | null = null; // kept referenced: a collected Tray disappears from the panel

/** Electron's menu for the model of tray-menu.ts; `act` runs an item's action. */
function toElectron(items: TrayItem[], act: (action: TrayAction) => void): MenuItemConstructorOptions[] {
  return items.map((i): MenuItemConstructorOptions => {
    if (i.type === 'separator') return { type: 'separator' };
    const action = i.action;
    return {
      label: i.label,
      enabled: i.enabled,
      ...(i.check ? { type: i.check.kind, checked: i.check.checked } : {}),
      ...(action ? { click: () => act(action) } : {}),
      ...(i.submenu ? { submenu: toElectron(i.submenu, act) } : {}),
    };
  });
}

export function createTray(onClick: () => void): Tray {
  tray = new Tray(nativeImage.createFromPath(resourcePath('tray.png')));
  tray.setToolTip('vOS');
  tray.on('click', onClick);
  return tray;
}

export function setTrayMenu(items: TrayItem[], tooltip: string, act: (action: TrayAction) => void): void {
  tray?.setContextMenu(Menu.buildFromTemplate(toElectron(items, act)));
  tray?.setToolTip(tooltip);
}

/** A desktop notification (where the desktop has them; the tray's menu and tooltip say it too). */
export function showNotice(notice: ScheduleNotice): void {
  if (Notification.isSupported()) new Notification({ title: notice.title, body: notice.body }).show();
}
