/**
 * The application menu (the window's menu bar) as data: a pure function, tested without Electron
 * (menu.ts turns it into Electron's menu). Without one, Electron installs its default menu, whose
 * accelerators are a browser's (lib/browser/api/menu-item-roles.ts): Ctrl+R and Ctrl+Shift+R
 * reload the page (the terminal views with it), Ctrl+Plus/Ctrl+-/Ctrl+0 zoom the whole page,
 * Ctrl+Shift+I opens the developer tools, Ctrl+W closes the window, Ctrl+M minimizes it, Ctrl+Q
 * quits, Ctrl+A/Ctrl+Z/Ctrl+Shift+Z are Edit items (its Ctrl+C/V/X are only shown, left to the page).
 *
 * On Linux Electron offers a key to the page first and to the menu only when the page did not
 * take it (preventDefault on keydown): the terminal view takes every key it sends to the program
 * and its own (copy, paste, find, zoom), but lets through what it has no use for (Ctrl+Shift with
 * most letters, a lone Alt) and everything typed outside the terminal (the session list, a
 * button). So this menu registers no chord at all: every Ctrl, Alt and Ctrl+Shift chord belongs to
 * the program or to the app's page. Its one accelerator is F11 (full screen), which the terminal
 * sends to the program (xterm takes it), so it acts only outside the terminal. No label has an
 * `&` (a mnemonic: Alt+letter would open its menu). No Electron roles either: a role brings its
 * own accelerator.
 */

export type AppMenuAction = 'hide-window' | 'quit' | 'toggle-full-screen' | 'toggle-dev-tools' | 'about';

export type AppMenuItem =
  | { type: 'separator' }
  /** `accelerator` in Electron's syntax ("F11"). */
  | { type: 'item'; label: string; action: AppMenuAction; accelerator?: string }
  | { type: 'submenu'; label: string; items: AppMenuItem[] };

export interface AppMenuInput {
  /** Offer the developer tools (a checkout's `npm start`, not a packaged app). */
  devTools: boolean;
}

const item = (label: string, action: AppMenuAction, accelerator?: string): AppMenuItem => ({
  type: 'item',
  label,
  action,
  ...(accelerator ? { accelerator } : {}),
});

export function appMenuModel(input: AppMenuInput): AppMenuItem[] {
  return [
    {
      type: 'submenu',
      label: 'vOS',
      items: [item('Close Window (vOS stays in the tray)', 'hide-window'), { type: 'separator' }, item('Quit vOS (sessions keep running)', 'quit')],
    },
    {
      type: 'submenu',
      label: 'View',
      items: [item('Toggle Full Screen', 'toggle-full-screen', 'F11'), ...(input.devTools ? [item('Toggle Developer Tools', 'toggle-dev-tools')] : [])],
    },
    { type: 'submenu', label: 'Help', items: [item('About vOS', 'about')] },
  ];
}

/** The text of Help → About (Electron's showMessageBox options). */
export function aboutBox(versions: { app: string; electron: string; chrome: string; node: string }): { title: string; message: string; detail: string } {
  return {
    title: 'About vOS',
    message: `vOS ${versions.app}`,
    detail:
      'Keeps terminal programs running and moves them between your machines.\n\n' +
      `Electron ${versions.electron}, Chromium ${versions.chrome}, Node.js ${versions.node}.`,
  };
}
