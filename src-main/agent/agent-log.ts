/**
 * The agent's log, kept small whatever happens: a program's output or a misbehaving peer can
 * make the same message come thousands of times a second, and the background agent's log is a
 * file nobody watches. So a message repeated at once is written once and then counted, at most
 * LINES_PER_WINDOW lines are written per window (the rest are counted), a line is cut at
 * MAX_LINE characters, and a log file that would pass its cap is moved to FILE.1 and started
 * anew (one old file is kept). Messages often quote what other machines said (their names): no
 * escape sequence, control or bidirectional character reaches the log (base/peer-text.ts), and
 * a message's later lines are indented, so that none can pass for an entry of its own.
 */
import { closeSync, copyFileSync, fstatSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { cleanLogText } from '../base/peer-text.js';

export const LOG_MAX_BYTES = 1024 * 1024;
const LINES_PER_WINDOW = 200;
const WINDOW_MS = 60_000;
const MAX_LINE = 4000;

export interface AgentLogOptions {
  /** Append to this file (rotated at `maxBytes`); absent: hand lines to `write`. */
  file?: string;
  /** Where lines go without a file (the daemon's stderr). */
  write?: (text: string) => void;
  maxBytes?: number;
  linesPerWindow?: number;
  windowMs?: number;
  now?: () => number;
}

export class AgentLog {
  private readonly fd: number | null;
  private readonly maxBytes: number;
  private readonly linesPerWindow: number;
  private readonly windowMs: number;
  private readonly now: () => number;
  private last: string | null = null;
  private repeats = 0;
  private windowStart = 0;
  private linesInWindow = 0;
  private dropped = 0;

  constructor(private readonly options: AgentLogOptions) {
    // Appending: the daemon's stdout and stderr (set up by whoever started it) may point at the
    // same file, and truncating it in place (below) keeps their writes at its new end too.
    this.fd = options.file ? openSync(options.file, 'a', 0o600) : null;
    this.maxBytes = options.maxBytes ?? LOG_MAX_BYTES;
    this.linesPerWindow = options.linesPerWindow ?? LINES_PER_WINDOW;
    this.windowMs = options.windowMs ?? WINDOW_MS;
    this.now = options.now ?? Date.now;
  }

  /** Logs one message (a line, or a few for a stack), with the time in front. */
  log(raw: string): void {
    const message = cleanLogText(raw);
    if (message === this.last) {
      this.repeats++;
      return;
    }
    this.flushRepeats();
    this.last = message;
    this.admit(message.length > MAX_LINE ? `${message.slice(0, MAX_LINE)}… (${message.length - MAX_LINE} more characters)` : message);
  }

  /** Writes what is still counted (repeats) and closes the file. */
  close(): void {
    this.flushRepeats();
    if (this.fd !== null) closeSync(this.fd);
  }

  private flushRepeats(): void {
    if (this.repeats === 0) return;
    const n = this.repeats;
    this.repeats = 0;
    this.admit(`(the message before was repeated ${n} more time${n === 1 ? '' : 's'})`);
  }

  /** Writes a line unless this window's lines are used up. */
  private admit(message: string): void {
    const now = this.now();
    if (now - this.windowStart >= this.windowMs) {
      this.windowStart = now;
      this.linesInWindow = 0;
      if (this.dropped > 0) {
        const n = this.dropped;
        this.dropped = 0;
        this.linesInWindow++;
        this.emit(now, `(${n} log line${n === 1 ? ' was' : 's were'} dropped: more than ${this.linesPerWindow} in ${this.windowMs / 1000} s)`);
      }
    }
    if (this.linesInWindow >= this.linesPerWindow) {
      this.dropped++;
      return;
    }
    this.linesInWindow++;
    this.emit(now, message);
  }

  private emit(now: number, message: string): void {
    const line = `${new Date(now).toISOString()} ${message}\n`;
    if (this.fd === null) {
      this.options.write?.(line);
      return;
    }
    const bytes = Buffer.from(line);
    // The file's size, not a count of our own writes: stray output to stdout/stderr lands there too.
    if (fstatSync(this.fd).size + bytes.length > this.maxBytes) this.rotate();
    writeSync(this.fd, bytes);
  }

  /**
   * FILE becomes FILE.1 by copy and truncate, not rename: the descriptors of stdout and stderr
   * that point at FILE (O_APPEND) then go on writing at the start of the new FILE.
   */
  private rotate(): void {
    try {
      copyFileSync(this.options.file!, `${this.options.file!}.1`);
    } catch {
      /* no room for the old log: dropping it is better than growing without end */
    }
    ftruncateSync(this.fd!, 0);
  }
}
