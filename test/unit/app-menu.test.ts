/**
 * The application menu (shell/app-menu.ts) takes no key from the terminal: none of its
 * accelerators is a key the terminal view uses (the renderer's terminal-keys.ts, and App.svelte's
 * Ctrl+Shift+T / Ctrl+Shift+M) or one a program needs (Ctrl+C, Ctrl+R, …), and none is a chord at
 * all. Checked against Electron's own default menu, which fails it.
 */
import { describe, expect, it } from 'vitest';
import { terminalAction, type KeyPress } from '../../src-renderer/src/lib/terminal-keys.js';
import { aboutBox, appMenuModel, type AppMenuItem } from '../../src-main/shell/app-menu.js';

/** An accelerator in Electron's syntax as modifiers and a key (letters lower case, "Plus" as "+"). */
interface Chord {
  ctrl: boolean;
  shift: boolean;
  alt: boolean;
  meta: boolean;
  key: string;
}

const MODIFIERS: Record<string, keyof Omit<Chord, 'key'>> = {
  // On Linux CommandOrControl is Control.
  commandorcontrol: 'ctrl',
  cmdorctrl: 'ctrl',
  control: 'ctrl',
  ctrl: 'ctrl',
  shift: 'shift',
  alt: 'alt',
  option: 'alt',
  altgr: 'alt',
  command: 'meta',
  cmd: 'meta',
  super: 'meta',
  meta: 'meta',
};

function chord(accelerator: string): Chord {
  const parts = accelerator.split('+');
  const key = parts.pop()!;
  const c: Chord = { ctrl: false, shift: false, alt: false, meta: false, key: key === 'Plus' ? '+' : key.toLowerCase() };
  for (const p of parts) {
    const m = MODIFIERS[p.toLowerCase()];
    if (!m) throw new Error(`${accelerator}: unknown modifier ${p}`);
    c[m] = true;
  }
  return c;
}

/** The key under a shifted character on a US layout: Ctrl+= and Ctrl+Plus are one key. */
const SAME_KEY: Record<string, string> = { '+': '=', _: '-', ')': '0' };
const physical = (key: string): string => SAME_KEY[key] ?? key;

/** Two chords on the same key with the same Ctrl/Alt/Meta (Shift or not: the view takes both). */
const overlaps = (a: Chord, b: Chord): boolean => physical(a.key) === physical(b.key) && a.ctrl === b.ctrl && a.alt === b.alt && a.meta === b.meta;

/** Keys a terminal program needs, and the app's page's own (App.svelte: new session, move). */
const FORBIDDEN = ['Ctrl+C', 'Ctrl+V', 'Ctrl+R', 'Ctrl+W', 'Ctrl+=', 'Ctrl+-', 'Ctrl+0', 'Ctrl+Shift+I', 'Ctrl+Shift+T', 'Ctrl+Shift+M'];

/** The key presses a chord is (letters as typed, with and without Shift; "=" also as "+"). */
function presses(c: Chord): KeyPress[] {
  const keys = c.key.length === 1 ? [c.key, c.key.toUpperCase(), physical(c.key), ...Object.keys(SAME_KEY).filter((k) => SAME_KEY[k] === physical(c.key))] : [c.key.toUpperCase()];
  return [...new Set(keys)].flatMap((key) =>
    [false, true].map((shift) => ({ type: 'keydown', key, ctrlKey: c.ctrl, shiftKey: shift || c.shift, altKey: c.alt, metaKey: c.meta })),
  );
}

/** Why an accelerator must not be in the menu (none: it may). */
function problems(accelerator: string): string[] {
  const c = chord(accelerator);
  const found: string[] = [];
  // Every Ctrl, Alt and Meta chord belongs to the program or the app's page: only a bare function key.
  if (!/^F([1-9]|1[0-9]|2[0-4])$/.test(accelerator)) found.push('not a bare function key');
  for (const press of presses(c)) {
    for (const selection of [true, false]) {
      const action = terminalAction(press, selection);
      if (action) found.push(`the terminal's ${action}`);
    }
  }
  for (const f of FORBIDDEN) if (overlaps(c, chord(f))) found.push(`overlaps ${f}`);
  return [...new Set(found)];
}

function walk(items: AppMenuItem[]): Extract<AppMenuItem, { type: 'item' | 'submenu' }>[] {
  return items.flatMap((i) => (i.type === 'separator' ? [] : i.type === 'submenu' ? [i, ...walk(i.items)] : [i]));
}

/** "Menu: label (accelerator) → action", separators left out. */
function view(items: AppMenuItem[], path = ''): string[] {
  return items.flatMap((i) => {
    if (i.type === 'separator') return [];
    if (i.type === 'submenu') return view(i.items, `${path}${i.label}: `);
    return [`${path}${i.label}${i.accelerator ? ` (${i.accelerator})` : ''} → ${i.action}`];
  });
}

describe('application menu', () => {
  it('is small: the window, quit, full screen, about; the developer tools only in a checkout', () => {
    expect(view(appMenuModel({ devTools: false }))).toEqual([
      'vOS: Close Window (vOS stays in the tray) → hide-window',
      'vOS: Quit vOS (sessions keep running) → quit',
      'View: Toggle Full Screen (F11) → toggle-full-screen',
      'Help: About vOS → about',
    ]);
    expect(view(appMenuModel({ devTools: true }))).toContain('View: Toggle Developer Tools → toggle-dev-tools');
  });

  it("has no accelerator the terminal or its programs use, and no mnemonic (Alt+letter)", () => {
    for (const devTools of [false, true]) {
      const items = walk(appMenuModel({ devTools }));
      const accelerators = items.flatMap((i) => (i.type === 'item' && i.accelerator ? [i.accelerator] : []));
      expect(accelerators.length).toBeGreaterThan(0);
      for (const a of accelerators) expect(problems(a), a).toEqual([]);
      for (const i of items) expect(i.label, 'an & makes a mnemonic').not.toContain('&');
    }
  });

  it("the check fails Electron's default menu (its accelerators on Linux), naming what each takes", () => {
    // lib/browser/api/menu-item-roles.ts: the roles of the default File, Edit, View and Window menus.
    const defaults = [
      'CommandOrControl+Q', // quit
      'CommandOrControl+Z', // undo
      'Shift+CommandOrControl+Z', // redo
      'CommandOrControl+A', // selectAll
      'CmdOrCtrl+R', // reload
      'Shift+CmdOrCtrl+R', // forceReload
      'Ctrl+Shift+I', // toggleDevTools
      'CommandOrControl+0', // resetZoom
      'CommandOrControl+Plus', // zoomIn
      'CommandOrControl+-', // zoomOut
      'CommandOrControl+M', // minimize
      'CommandOrControl+W', // close
      'CommandOrControl+C', // copy (shown, not registered)
      'CommandOrControl+V', // paste (shown, not registered)
    ];
    for (const a of defaults) expect(problems(a), a).not.toEqual([]);
    expect(problems('CommandOrControl+Plus')).toContain("the terminal's zoom-in");
    expect(problems('CommandOrControl+-')).toContain("the terminal's zoom-out");
    expect(problems('CommandOrControl+0')).toContain("the terminal's zoom-reset");
    expect(problems('CommandOrControl+C')).toContain("the terminal's copy");
    expect(problems('Shift+CommandOrControl+V')).toContain("the terminal's paste");
    expect(problems('Ctrl+Shift+F')).toContain("the terminal's find");
    expect(problems('CmdOrCtrl+R')).toContain('overlaps Ctrl+R');
    expect(problems('Shift+CmdOrCtrl+R')).toContain('overlaps Ctrl+R');
    expect(problems('Ctrl+Shift+I')).toContain('overlaps Ctrl+Shift+I');
    expect(problems('CommandOrControl+W')).toContain('overlaps Ctrl+W');
    expect(problems('Ctrl+Shift+T')).toContain('overlaps Ctrl+Shift+T');
    expect(problems('Alt+V')).toEqual(['not a bare function key']);
    // And what this menu uses passes.
    expect(problems('F11')).toEqual([]);
  });

  it('About names the version and what it runs on', () => {
    const box = aboutBox({ app: '0.1.0', electron: '41.7.1', chrome: '146.0.0.0', node: '22.1.0' });
    expect(box.message).toBe('vOS 0.1.0');
    expect(box.detail).toContain('Electron 41.7.1, Chromium 146.0.0.0, Node.js 22.1.0');
  });
});
