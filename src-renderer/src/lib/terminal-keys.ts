/**
 * What a key pressed in the terminal means to the app rather than to the program, as VS Code's
 * terminal does it: Ctrl+Shift+C copies, Ctrl+C copies when text is selected (and is ^C
 * otherwise), Ctrl+Shift+V pastes, Ctrl+Shift+F finds in the scrollback, Ctrl+= / Ctrl+- /
 * Ctrl+0 zoom. Anything else goes to the program.
 */
export type TerminalAction = 'copy' | 'paste' | 'find' | 'zoom-in' | 'zoom-out' | 'zoom-reset';

export interface KeyPress {
  type: string;
  key: string;
  ctrlKey: boolean;
  shiftKey: boolean;
  altKey: boolean;
  metaKey: boolean;
}

export function terminalAction(e: KeyPress, hasSelection: boolean): TerminalAction | null {
  if (!e.ctrlKey || e.altKey || e.metaKey) return null;
  const key = e.key.toLowerCase();
  if (e.shiftKey) {
    if (key === 'c') return 'copy';
    if (key === 'v') return 'paste';
    if (key === 'f') return 'find';
    if (key === '+') return 'zoom-in'; // Ctrl+Shift+= on a US layout
    return null;
  }
  if (key === 'c' && hasSelection) return 'copy';
  if (key === '=' || key === '+') return 'zoom-in';
  if (key === '-') return 'zoom-out';
  if (key === '0') return 'zoom-reset';
  return null;
}
