import { Menu, type MenuItemConstructorOptions } from 'electron';
import type { AppMenuAction, AppMenuItem } from './app-menu.js';

/**
 * Electron's menu for the model of app-menu.ts; `act` runs an item's action. Only the model's
 * accelerators are registered: no item gets a `role` (a role brings its own, such as zoomIn's
 * Ctrl+Plus or reload's Ctrl+R).
 */
function toElectron(items: AppMenuItem[], act: (action: AppMenuAction) => void): MenuItemConstructorOptions[] {
  return items.map((i): MenuItemConstructorOptions => {
    if (i.type === 'separator') return { type: 'separator' };
    if (i.type === 'submenu') return { label: i.label, submenu: toElectron(i.items, act) };
    return { label: i.label, ...(i.accelerator ? { accelerator: i.accelerator } : {}), click: () => act(i.action) };
  });
}

/** The application menu, for Menu.setApplicationMenu (set before the first window: it replaces Electron's default). */
export function buildAppMenu(items: AppMenuItem[], act: (action: AppMenuAction) => void): Menu {
  return Menu.buildFromTemplate(toElectron(items, act));
}
