/**
 * A headless terminal that parses everything a session's program prints, so the agent always
 * knows the screen: a viewer that attaches later gets the current screen and scrollback, and
 * `screen`/`wait` read it as text.
 *
 * xterm parses asynchronously in time slices (a flood never blocks the event loop for long).
 * `pendingChars` tells how far parsing lags behind what was written, for flow control, and
 * `settled()` waits until everything written so far is on the screen.
 */
import xtermHeadless from '@xterm/headless';
import serializeModule from '@xterm/addon-serialize';
import type { ScreenText } from '../../api/protocol.js';

// Both packages are CommonJS; Node's ESM loader exposes them as a default export only.
const { Terminal } = xtermHeadless;
const { SerializeAddon } = serializeModule;
type HeadlessTerminal = InstanceType<typeof Terminal>;
type Serializer = InstanceType<typeof SerializeAddon>;

export const MIRROR_SCROLLBACK_LINES = 10_000;
/**
 * The scrollback is bounded in cells, not only lines, so a wide terminal does not multiply its
 * memory: 10,000 lines up to 100 columns, fewer at more (about 12 bytes a cell, some 12 MiB).
 */
export const MIRROR_SCROLLBACK_CELLS = 1_000_000;

/** How many lines of scrollback the mirror keeps at this width. */
export function scrollbackLinesFor(cols: number): number {
  return Math.min(MIRROR_SCROLLBACK_LINES, Math.floor(MIRROR_SCROLLBACK_CELLS / cols));
}

/** Longest title kept (a terminal's tab shows far less). */
const MAX_TITLE = 1024;

/** A title as it may be written into an OSC again: no control characters, not too long. */
function titleText(title: string): string {
  return [...title.replace(/[\x00-\x1f\x7f-\x9f]/g, '')].slice(0, MAX_TITLE).join('');
}

export class ScreenMirror {
  private readonly term: HeadlessTerminal;
  private readonly serializer: Serializer;
  private pending = 0;
  private disposed = false;

  /** Called after a write has been parsed (so waiters can look at the screen again). */
  onParsed: (() => void) | null = null;
  /**
   * Called with the mirror's answer to a question the program asked its terminal (a cursor
   * position report, device attributes...: see terminal-queries.ts), as the question is parsed.
   * Never for output written with `quiet` (a saved screen, a journal already answered).
   */
  onAnswer: ((data: string) => void) | null = null;
  /** Quiet writes being parsed now. */
  private quiet = 0;
  /** The program's title (OSC 0 or 2), as a terminal keeps it; part of every snapshot. */
  private title = '';

  constructor(cols: number, rows: number) {
    // logLevel off: xterm reports every sequence it cannot parse on the console, so a program
    // printing random bytes filled the agent's log with tens of megabytes of dumps.
    this.term = new Terminal({ cols, rows, scrollback: scrollbackLinesFor(cols), allowProposedApi: true, logLevel: 'off' });
    this.serializer = new SerializeAddon();
    this.term.loadAddon(this.serializer);
    this.term.onTitleChange((title) => (this.title = titleText(title)));
    this.term.onData((data) => {
      if (this.quiet === 0 && !this.disposed) this.onAnswer?.(data);
    });
  }

  get cols(): number {
    return this.term.cols;
  }

  get rows(): number {
    return this.term.rows;
  }

  /** Lines of scrollback kept at the current width. */
  get scrollbackLines(): number {
    return this.term.options.scrollback ?? 0;
  }

  /** Characters written but not yet parsed. */
  get pendingChars(): number {
    return this.pending;
  }

  /** `quiet`: questions in `data` are not answered (see onAnswer). */
  write(data: string, parsed?: () => void, quiet = false): void {
    if (this.disposed) return;
    // Callbacks run in order with the parsing: the count is up exactly while `data` is parsed.
    if (quiet) this.term.write('', () => this.quiet++);
    this.pending += data.length;
    this.term.write(data, () => {
      if (quiet) this.quiet--;
      this.pending -= data.length;
      parsed?.();
      this.onParsed?.();
    });
  }

  /**
   * Runs `fn` once everything written before this call has been parsed and nothing written after
   * it has: the screen is exactly "the output up to now". Resolves with `fn`'s result.
   */
  atCurrentPoint<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.disposed) {
        try {
          resolve(fn());
        } catch (err) {
          reject(err);
        }
        return;
      }
      this.term.write('', () => {
        try {
          resolve(fn());
        } catch (err) {
          reject(err);
        }
      });
    });
  }

  resize(cols: number, rows: number): void {
    if (this.disposed || (cols === this.term.cols && rows === this.term.rows)) return;
    // A wider terminal keeps fewer lines: they go before the lines widen, so the cap always holds.
    const scrollback = scrollbackLinesFor(cols);
    if (scrollback < this.term.options.scrollback!) this.term.options.scrollback = scrollback;
    this.term.resize(cols, rows);
    this.term.options.scrollback = scrollback;
  }

  /**
   * The screen and scrollback as escape sequences (call inside `atCurrentPoint` for a clean cut),
   * after the program's title if it set one: a viewer that comes later, a restored session and
   * a moved one have it too (xterm's serializer leaves it out).
   */
  serialize(): string {
    const title = this.title ? `\x1b]2;${this.title}\x07` : '';
    return title + this.serializer.serialize({ scrollback: MIRROR_SCROLLBACK_LINES });
  }

  /** The visible rows as text, trailing blanks trimmed. */
  text(id: string): ScreenText {
    const buffer = this.term.buffer.active;
    const lines: string[] = [];
    for (let y = 0; y < this.term.rows; y++) {
      lines.push((buffer.getLine(buffer.baseY + y)?.translateToString(true) ?? '').trimEnd());
    }
    return {
      id,
      cols: this.term.cols,
      rows: this.term.rows,
      cursor: { x: buffer.cursorX, y: buffer.cursorY },
      lines,
    };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.term.dispose();
  }
}
