/**
 * The terminal's settings of this window, kept in the page's local storage: the font size
 * (Ctrl+= / Ctrl+- / Ctrl+0) and whether selecting text copies it.
 */
export const DEFAULT_FONT_SIZE = 14;
const MIN_FONT_SIZE = 8;
const MAX_FONT_SIZE = 32;
const KEY = 'vos.terminal';

interface Stored {
  fontSize?: unknown;
  copyOnSelect?: unknown;
}

export class TerminalSettings {
  fontSize = $state(DEFAULT_FONT_SIZE);
  copyOnSelect = $state(false);

  constructor(private readonly storage: Storage | null = globalThis.localStorage ?? null) {
    let stored: Stored = {};
    try {
      stored = JSON.parse(this.storage?.getItem(KEY) ?? '{}') as Stored;
    } catch {
      /* a value another version wrote, or garbage: the defaults */
    }
    if (typeof stored.fontSize === 'number' && Number.isInteger(stored.fontSize)) this.fontSize = clamp(stored.fontSize);
    this.copyOnSelect = stored.copyOnSelect === true;
  }

  zoom(step: -1 | 0 | 1): void {
    this.fontSize = step === 0 ? DEFAULT_FONT_SIZE : clamp(this.fontSize + step);
    this.save();
  }

  setCopyOnSelect(on: boolean): void {
    this.copyOnSelect = on;
    this.save();
  }

  private save(): void {
    try {
      this.storage?.setItem(KEY, JSON.stringify({ fontSize: this.fontSize, copyOnSelect: this.copyOnSelect }));
    } catch {
      /* storage full or off: the setting lasts for this page */
    }
  }
}

function clamp(size: number): number {
  return Math.min(MAX_FONT_SIZE, Math.max(MIN_FONT_SIZE, size));
}
