/**
 * The window's layout that the user sets: the sidebar's width (dragged, or with the arrow keys on
 * its edge), kept in the page's local storage. Null: the default (by the window's width).
 */
const KEY = 'vos.layout';
export const SIDEBAR_MIN = 180;
export const SIDEBAR_MAX = 640;

export class LayoutState {
  sidebarWidth = $state<number | null>(null);

  constructor(private readonly storage: Storage | null = globalThis.localStorage ?? null) {
    try {
      const stored = JSON.parse(this.storage?.getItem(KEY) ?? '{}') as { sidebarWidth?: unknown };
      if (typeof stored.sidebarWidth === 'number' && Number.isFinite(stored.sidebarWidth)) this.sidebarWidth = clampWidth(stored.sidebarWidth);
    } catch {
      /* garbage in storage: the default */
    }
  }

  setSidebarWidth(width: number | null): void {
    this.sidebarWidth = width === null ? null : clampWidth(width);
    try {
      this.storage?.setItem(KEY, JSON.stringify({ sidebarWidth: this.sidebarWidth }));
    } catch {
      /* storage off: it lasts for this page */
    }
  }
}

function clampWidth(width: number): number {
  return Math.round(Math.min(SIDEBAR_MAX, Math.max(SIDEBAR_MIN, width)));
}
