/**
 * Messages between the agent's main thread and its mirror thread (mirror-thread.ts,
 * mirror-worker.ts): the screen mirrors of all sessions are parsed there, so that a flood of
 * output never holds up the agent's event loop. Each mirror has a number; messages about it are
 * handled in the order they were sent, so a read is "the screen at this point of the output".
 */
import type { ScreenText } from '../../api/protocol.js';

/** A screen as text, without the session id the main thread adds. */
export type MirrorText = Omit<ScreenText, 'id'>;

export type ToMirror =
  | { t: 'open'; mirror: number; cols: number; rows: number }
  /**
   * `asks`: the output asks the terminal a question (terminal-queries.ts): parse it without delay.
   * `report`: say as soon as it is parsed (someone waits for the screen); otherwise parsed output
   * is reported in REPORT_CHARS steps (and before every read's answer), which spares the agent's
   * loop a wake-up for every key echoed.
   */
  | { t: 'write'; mirror: number; data: string; quiet: boolean; asks: boolean; report: boolean }
  | { t: 'resize'; mirror: number; cols: number; rows: number }
  /** `what`: 'shot' the screen and scrollback as escape sequences, 'text' the visible rows, 'point' nothing (a barrier). */
  | { t: 'read'; mirror: number; req: number; what: 'shot' | 'text' | 'point' }
  | { t: 'close'; mirror: number };

/** Parsed output is reported at least in steps of this many characters. */
export const REPORT_CHARS = 256 * 1024;

export type FromMirror =
  /** Characters of the mirror's output parsed since the last such message. */
  | { t: 'parsed'; mirror: number; chars: number }
  /** The mirror's answer to a question the program asked its terminal (terminal-queries.ts). */
  | { t: 'answer'; mirror: number; data: string }
  /** A read's result; null when the mirror is not (or no longer) there. */
  | { t: 'read'; req: number; shot?: { snapshot: string; cols: number; rows: number } | null; text?: MirrorText | null };
