/**
 * Fast-forward for the screen mirror: output a flood pushes off the top of the scrollback before
 * anyone could see it need not be parsed cell by cell.
 *
 * A terminal keeps the screen and `scrollback` lines above it. In a run of plain text (no escape
 * sequence, no control character but CR, LF, tab and backspace) every line feed with the cursor
 * on the bottom row of a full-screen scroll region pushes one line up, and plain text changes no
 * other state (attributes, modes, charsets, title). So when a run ends with more line feeds than
 * the screen and the scrollback hold, everything before those last lines changes the screen only
 * through where it leaves the cursor. This module finds such a prefix and gives the equivalent
 * that leaves the cursor at the same place: CR, then enough line feeds to reach the bottom row.
 *
 * Conditions, checked by the caller (screen-mirror.ts) on the terminal before the data: its
 * parser is between sequences, and the scroll region is the whole screen. Checked here: the
 * prefix is plain, ends with CR LF (the cursor is in column 0) and has at least `rows` line feeds
 * (the cursor is on the bottom row whatever the line wrapping; so is the equivalent's), and the
 * plain text after it has at least `keepLines` line feeds (every line the prefix touched is
 * pushed out of the scrollback by them).
 */

/** Anything but printable characters, CR, LF, tab and backspace (C0, DEL and C1 controls). */
const NOT_PLAIN = /[\x00-\x07\x0b\x0c\x0e-\x1f\x7f-\x9f]/g;

/** Below this many characters a fast-forward saves too little to look for one. */
export const FAST_FORWARD_MIN_CHARS = 64 * 1024;

/** Where the plain text at the start of `data` ends; the first `plainUpTo` characters are known plain. */
function plainLength(data: string, plainUpTo: number): number {
  NOT_PLAIN.lastIndex = plainUpTo;
  const other = NOT_PLAIN.exec(data);
  return other ? other.index : data.length;
}

export interface FastForward {
  /** The equivalent and what follows it. */
  data: string;
  /** Characters left out. */
  skipped: number;
  /** How many characters at the start of `data` are plain (for the next call's `plainUpTo`). */
  plainChars: number;
}

/**
 * `data` with the part no one can see anymore replaced by its equivalent, or null when there is
 * none: `keepLines` is at least the screen's rows plus its scrollback lines plus one. The first
 * `plainUpTo` characters are known to be plain (a previous result's `plainChars`).
 */
export function fastForward(data: string, rows: number, keepLines: number, plainUpTo = 0): FastForward | null {
  if (data.length < FAST_FORWARD_MIN_CHARS) return null;
  const plainEnd = plainLength(data, plainUpTo);
  // Walk back over the last keepLines line feeds of the plain run.
  let pos = plainEnd;
  for (let n = 0; n < keepLines; n++) {
    pos = data.lastIndexOf('\n', pos - 1);
    if (pos < 0) return null;
  }
  // The prefix ends just after a CR LF at or before that line feed.
  let cut = pos;
  while (cut > 0 && data.charCodeAt(cut - 1) !== 0x0d) {
    cut = data.lastIndexOf('\n', cut - 1);
    if (cut < 0) return null;
  }
  if (cut <= 0) return null;
  const prefixEnd = cut + 1;
  if (countLineFeeds(data, prefixEnd, rows) < rows) return null;
  const equivalent = '\r' + '\n'.repeat(rows);
  if (prefixEnd <= equivalent.length) return null;
  return { data: equivalent + data.slice(prefixEnd), skipped: prefixEnd - equivalent.length, plainChars: equivalent.length + plainEnd - prefixEnd };
}

/** Line feeds in data[0, end), counting up to `atLeast` only. */
function countLineFeeds(data: string, end: number, atLeast: number): number {
  let n = 0;
  for (let i = data.indexOf('\n'); i >= 0 && i < end && n < atLeast; i = data.indexOf('\n', i + 1)) n++;
  return n;
}
