/** Which keys in the terminal are the app's (copy, paste, find, zoom) and which the program's. */
import { describe, expect, it } from 'vitest';
import { terminalAction, type KeyPress } from '../../src-renderer/src/lib/terminal-keys.js';

const press = (key: string, mods: Partial<KeyPress> = {}): KeyPress => ({
  type: 'keydown',
  key,
  ctrlKey: false,
  shiftKey: false,
  altKey: false,
  metaKey: false,
  ...mods,
});

describe('terminal keys', () => {
  it('Ctrl+C copies only with a selection; with none it is the program’s ^C', () => {
    expect(terminalAction(press('c', { ctrlKey: true }), true)).toBe('copy');
    expect(terminalAction(press('c', { ctrlKey: true }), false)).toBeNull();
    expect(terminalAction(press('C', { ctrlKey: true, shiftKey: true }), false)).toBe('copy');
    expect(terminalAction(press('V', { ctrlKey: true, shiftKey: true }), false)).toBe('paste');
    expect(terminalAction(press('F', { ctrlKey: true, shiftKey: true }), false)).toBe('find');
  });

  it('zoom on Ctrl+= / Ctrl++ / Ctrl+- / Ctrl+0; the program keeps Ctrl+V, Ctrl+F, Alt and Meta chords', () => {
    expect(terminalAction(press('=', { ctrlKey: true }), false)).toBe('zoom-in');
    expect(terminalAction(press('+', { ctrlKey: true, shiftKey: true }), false)).toBe('zoom-in');
    expect(terminalAction(press('-', { ctrlKey: true }), false)).toBe('zoom-out');
    expect(terminalAction(press('0', { ctrlKey: true }), false)).toBe('zoom-reset');
    expect(terminalAction(press('v', { ctrlKey: true }), false)).toBeNull(); // readline's quoted insert
    expect(terminalAction(press('f', { ctrlKey: true }), false)).toBeNull();
    expect(terminalAction(press('c', { ctrlKey: true, altKey: true }), true)).toBeNull();
    expect(terminalAction(press('c', { ctrlKey: true, metaKey: true }), true)).toBeNull();
    expect(terminalAction(press('c'), true)).toBeNull();
  });
});
