/**
 * The size of the terminal the CLI runs in, for a session. A terminal may report 0 x 0 (a
 * serial console, some CI runners and `script` sessions never set a size): each dimension that
 * is not a positive whole number falls back to 80 columns or 24 rows, as programs do for a
 * terminal that says nothing.
 */
export const FALLBACK_COLS = 80;
export const FALLBACK_ROWS = 24;

function usable(n: number | undefined): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n > 0;
}

export function terminalSize(stream: { columns?: number; rows?: number }): { cols: number; rows: number } {
  return {
    cols: usable(stream.columns) ? stream.columns : FALLBACK_COLS,
    rows: usable(stream.rows) ? stream.rows : FALLBACK_ROWS,
  };
}
