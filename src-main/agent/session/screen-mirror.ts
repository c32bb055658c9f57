/**
 * A headless terminal that parses everything a session's program prints, so the agent always
 * knows the screen: a viewer that attaches later gets the current screen and scrollback, and
 * `screen`/`wait` read it as text. It runs in the agent's mirror thread (mirror-worker.ts).
 *
 * Output is queued here and handed to xterm once it parsed what it had, so each batch starts
 * from a known state of the terminal: in a flood, what the scrollback cannot keep is skipped
 * (fast-forward.ts) instead of parsed. `atCurrentPoint` runs a read once everything written
 * before it is parsed, and a resize takes effect in order with the output. `pendingChars` tells
 * how far parsing lags behind what was written, for flow control.
 */
import xtermHeadless from '@xterm/headless';
import serializeModule from '@xterm/addon-serialize';
import type { ScreenText } from '../../api/protocol.js';
import { FAST_FORWARD_MIN_CHARS, fastForward, type FastForward } from './fast-forward.js';

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

/** What the terminal needs to be in for a fast-forward (see fast-forward.ts), when it can tell. */
interface TerminalInternals {
  _core?: { buffer?: { scrollTop?: unknown; scrollBottom?: unknown }; _inputHandler?: { _parser?: { currentState?: unknown } } };
}

/**
 * In a flood, output is let gather (see ScreenMirror.holding) until it pauses for FLOOD_QUIET_MS,
 * for at most FLOOD_HOLD_MS, or until FLOOD_HOLD_CHARS of it cannot be fast-forwarded.
 */
const FLOOD_QUIET_MS = 20;
const FLOOD_HOLD_MS = 500;
const FLOOD_HOLD_CHARS = 6 * 1024 * 1024;

function lineFeeds(data: string): number {
  let n = 0;
  for (let i = data.indexOf('\n'); i >= 0; i = data.indexOf('\n', i + 1)) n++;
  return n;
}

/** xterm's parser state between sequences (ParserState.GROUND). */
const PARSER_GROUND = 0;

/**
 * Output written, not yet handed to xterm. `chars` is what it counts in `pendingChars` (0 for
 * what a fast-forward left: its output was counted as parsed then); `plainChars` how much of its
 * start is known to be plain text (fast-forward.ts).
 */
interface QueuedOutput {
  kind: 'data';
  data: string;
  quiet: boolean;
  chars: number;
  plainChars: number;
  parsed: (() => void) | undefined;
}

/** A point in the output: `run` once all before it is parsed (a read, a resize). */
interface QueuedPoint {
  kind: 'at';
  run: () => void;
}

type Entry = QueuedOutput | QueuedPoint;

export class ScreenMirror {
  private readonly term: HeadlessTerminal;
  private readonly serializer: Serializer;
  private pending = 0;
  private disposed = false;
  /** Written but not yet handed to xterm (it gets more once it parsed what it has). */
  private queue: Entry[] = [];
  /** Handed to xterm and not yet parsed. */
  private busy = false;
  /** Output queued: characters, and line feeds of the output at the queue's head that is not quiet. */
  private queuedChars = 0;
  private queuedLineFeeds = 0;
  /** Entries queued that are points or quiet output (a fast-forward takes only plain runs of output). */
  private queuedOthers = 0;
  /** The last output handed to xterm was large: output is a flood, and more is let gather. */
  private flooding = false;
  /** Since when output has been let gather, and when it last came. */
  private holdSince = 0;
  private lastWriteAt = 0;
  private holdTimer: NodeJS.Timeout | null = null;
  /** The queue's head is known not to fast-forward until it is handed over. */
  private headStuck = false;
  /** Queued output asks a question: it is not held (see holding). */
  private asked = false;
  /** The size as last asked for: xterm takes it in order with the output (see resize). */
  private size: { cols: number; rows: number };
  /** Characters of output skipped by fast-forwards (see fast-forward.ts). */
  skippedChars = 0;

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
    this.size = { cols, rows };
    this.serializer = new SerializeAddon();
    this.term.loadAddon(this.serializer);
    this.term.onTitleChange((title) => (this.title = titleText(title)));
    this.term.onData((data) => {
      if (this.quiet === 0 && !this.disposed) this.onAnswer?.(data);
    });
  }

  get cols(): number {
    return this.size.cols;
  }

  get rows(): number {
    return this.size.rows;
  }

  /** Lines of scrollback kept at the current width. */
  get scrollbackLines(): number {
    return scrollbackLinesFor(this.size.cols);
  }

  /** Characters written but not yet parsed. */
  get pendingChars(): number {
    return this.pending;
  }

  /**
   * `quiet`: questions in `data` are not answered (see onAnswer). `asks`: `data` asks a question
   * (the program waits for the answer), or someone waits for text: it is not let gather in a
   * flood.
   */
  write(data: string, parsed?: () => void, quiet = false, asks = false): void {
    if (this.disposed) return;
    this.pending += data.length;
    this.queue.push({ kind: 'data', data, quiet, chars: data.length, plainChars: 0, parsed });
    this.queuedChars += data.length;
    if (quiet) this.queuedOthers++;
    this.lastWriteAt = Date.now();
    if (asks) this.asked = true;
    if (this.flooding && this.queuedOthers === 0) {
      this.queuedLineFeeds += lineFeeds(data);
      this.compress();
    }
    this.pump();
  }

  /**
   * Runs `fn` once everything written before this call has been parsed and nothing written after
   * it has: the screen is exactly "the output up to now". Resolves with `fn`'s result.
   */
  atCurrentPoint<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const run = (): void => {
        try {
          resolve(fn());
        } catch (err) {
          reject(err);
        }
      };
      if (this.disposed) run();
      else {
        this.queue.push({ kind: 'at', run });
        this.queuedOthers++;
        this.pump();
      }
    });
  }

  /** Takes effect in order with the output: what was written before is parsed at the old size. */
  resize(cols: number, rows: number): void {
    if (this.disposed || (cols === this.size.cols && rows === this.size.rows)) return;
    this.size = { cols, rows };
    this.queue.push({ kind: 'at', run: () => this.applySize(cols, rows) });
    this.queuedOthers++;
    this.pump();
  }

  private applySize(cols: number, rows: number): void {
    if (this.disposed || (cols === this.term.cols && rows === this.term.rows)) return;
    // A wider terminal keeps fewer lines: they go before the lines widen, so the cap always holds.
    const scrollback = scrollbackLinesFor(cols);
    if (scrollback < this.term.options.scrollback!) this.term.options.scrollback = scrollback;
    this.term.resize(cols, rows);
    this.term.options.scrollback = scrollback;
  }

  /** Lines a fast-forward keeps: more than the terminal holds (screen and scrollback). */
  private keepLines(): number {
    return this.term.rows + scrollbackLinesFor(this.term.cols) + 1;
  }

  /**
   * Hands xterm what is queued once it parsed what it had, from a known state of the terminal:
   * the points at the head of the queue, or its first run of output as one write. xterm parses
   * in time slices of its own.
   */
  private pump(): void {
    if (this.busy || this.disposed || this.queue.length === 0 || this.holding()) return;
    this.busy = true;
    const first = this.queue[0]!;
    if (first.kind === 'at') {
      // Output after the points waits for them to pass (a resize changes what it fast-forwards).
      let n = 0;
      while (n < this.queue.length && this.queue[n]!.kind === 'at') n++;
      for (const e of this.queue.splice(0, n) as QueuedPoint[]) this.term.write('', e.run);
      this.queuedOthers -= n;
    } else {
      let n = 1;
      while (n < this.queue.length && this.queue[n]!.kind === 'data' && (this.queue[n] as QueuedOutput).quiet === first.quiet) n++;
      const run = this.queue.splice(0, n) as QueuedOutput[];
      const chars = this.handOver(run, first.quiet);
      this.flooding = !first.quiet && chars >= FAST_FORWARD_MIN_CHARS;
      this.queuedChars -= chars;
      if (first.quiet) this.queuedOthers -= n;
      this.queuedLineFeeds = 0;
      this.headStuck = false;
      if (this.queue.length === 0) this.asked = false;
    }
    this.term.write('', () => {
      this.busy = false;
      if (this.flooding) this.holdSince = Date.now();
      this.pump();
    });
  }

  /**
   * In a flood, output is let gather instead of parsed, and what gathers is fast-forwarded as it
   * comes (compress): parsing costs what the terminal keeps, not what arrived. It is handed over
   * once output pauses, after FLOOD_HOLD_MS, when FLOOD_HOLD_CHARS of it cannot be fast-forwarded,
   * and at once for a point (a read) or a question.
   */
  private holding(): boolean {
    if (!this.flooding || this.asked || this.queuedChars >= FLOOD_HOLD_CHARS || this.queuedOthers > 0) return false;
    const now = Date.now();
    if (now - this.lastWriteAt >= FLOOD_QUIET_MS || now - this.holdSince >= FLOOD_HOLD_MS) return false;
    this.holdTimer ??= setTimeout(() => {
      this.holdTimer = null;
      this.pump();
    }, FLOOD_QUIET_MS);
    return true;
  }

  /**
   * While xterm is idle (its state is that at the queue's head) and the queue is plain output
   * with line feeds enough to push twice what the terminal keeps, replaces it with its
   * fast-forward: the output left out counts as parsed now.
   */
  private compress(): void {
    if (this.busy || this.headStuck || this.asked || this.queuedLineFeeds < 2 * this.keepLines()) return;
    if (!this.canFastForward()) {
      this.headStuck = true;
      return;
    }
    const run = this.queue as QueuedOutput[];
    const ff = this.skipUnseen(run);
    if (!ff) {
      // Not plain far enough: the head stays as it is until it is parsed.
      this.headStuck = true;
      return;
    }
    this.queue = [{ kind: 'data', data: ff.data, quiet: false, chars: 0, plainChars: ff.plainChars, parsed: undefined }];
    this.queuedChars = ff.data.length;
    this.queuedLineFeeds = lineFeeds(ff.data);
    for (const e of run) {
      this.pending -= e.chars;
      e.parsed?.();
    }
    this.onParsed?.();
  }

  /** A run of output joined, with what the terminal cannot keep of it skipped (null: nothing to skip). */
  private skipUnseen(run: QueuedOutput[]): FastForward | null {
    const joined = run.length === 1 ? run[0]!.data : run.map((e) => e.data).join('');
    const ff = fastForward(joined, this.term.rows, this.keepLines(), run[0]!.plainChars);
    if (ff) this.skippedChars += ff.skipped;
    return ff;
  }

  /** One run of output to xterm, which has parsed all it had; returns its length as written. */
  private handOver(run: QueuedOutput[], quiet: boolean): number {
    const ff = !quiet && this.canFastForward() ? this.skipUnseen(run) : null;
    const data = ff ? ff.data : run.length === 1 ? run[0]!.data : run.map((e) => e.data).join('');
    const pending = run.reduce((n, e) => n + e.chars, 0);
    // Callbacks run in order with the parsing: the count is up exactly while `data` is parsed.
    if (quiet) this.term.write('', () => this.quiet++);
    this.term.write(data, () => {
      if (quiet) this.quiet--;
      this.pending -= pending;
      for (const e of run) e.parsed?.();
      this.onParsed?.();
    });
    return run.reduce((n, e) => n + e.data.length, 0);
  }

  /** Between sequences, with the whole screen as the scroll region (see fast-forward.ts). */
  private canFastForward(): boolean {
    // xterm's public API tells neither: its internals, checked, and no fast-forward if they
    // are not as expected (a newer xterm).
    const core = (this.term as unknown as TerminalInternals)._core;
    const state = core?._inputHandler?._parser?.currentState;
    const buffer = core?.buffer;
    return state === PARSER_GROUND && buffer?.scrollTop === 0 && buffer.scrollBottom === this.term.rows - 1;
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

  /** The screen and scrollback with the size they were parsed at (call inside `atCurrentPoint`). */
  shot(): { snapshot: string; cols: number; rows: number } {
    return { snapshot: this.serialize(), cols: this.term.cols, rows: this.term.rows };
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

  /** Points still queued are run now (on the screen as parsed so far), so no one waits forever. */
  dispose(): void {
    if (this.disposed) return;
    const queued = this.queue;
    this.queue = [];
    if (this.holdTimer) clearTimeout(this.holdTimer);
    for (const e of queued) if (e.kind === 'at') e.run();
    this.disposed = true;
    this.term.dispose();
  }
}
