/**
 * `vos attach`: this terminal becomes a viewer of a session. Keys go to the program, its output
 * comes here, the session follows this terminal's size, and the detach key leaves the program
 * running.
 */
import type { ApiClient } from '../api/client.js';
import { VosError } from '../api/errors.js';
import type { ApiEvent, SessionInfo } from '../api/protocol.js';
import { terminalSize } from './terminal-size.js';

/** Ctrl-\ (0x1c): rarely needed by programs, and dtach's and abduco's choice too. */
export const DEFAULT_DETACH_KEY = '\x1c';

/** Puts the user's terminal back in a sane state whatever the program left behind. */
const RESTORE_TERMINAL =
  '\x1b[?1049l' + // leave the alternate screen
  '\x1b[?25h' + // show the cursor
  '\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l' + // mouse reporting off
  '\x1b[?2004l' + // bracketed paste off
  '\x1b[?1l\x1b>' + // normal cursor and keypad keys
  '\x1b[0m'; // default colours

/** The screen cleared, the cursor at its top left (the scrollback stays). */
const CLEAR_SCREEN = '\x1b[H\x1b[2J';

/** Clears screen and scrollback before a snapshot is drawn. */
const RESET_TERMINAL = '\x1bc';

/** How long the detach hint stays over the bottom row when no key comes first. */
export const HINT_MS = 4000;

/**
 * The detach hint as GNU screen shows its messages: over the bottom row, in reverse video, the
 * cursor (and its attributes) saved and put back. What it covers comes back by a redraw.
 */
export function hintOverlay(text: string, cols: number, rows: number): string {
  const chars = [...text.replace(/[\x00-\x1f\x7f-\x9f]/g, '')];
  const shown = chars.length > cols ? chars.slice(0, Math.max(0, cols - 1)).join('') + '…' : chars.join('');
  return `\x1b7\x1b[${rows};1H\x1b[2K\x1b[7m${shown}\x1b[27m\x1b8`;
}

/** Parses "^\", "^]", "^A" ... or a single character. */
export function parseDetachKey(spec: string): string {
  if (spec.length === 2 && spec[0] === '^') {
    const code = spec.toUpperCase().charCodeAt(1) ^ 0x40;
    if (code < 0x20 || code === 0x7f) return String.fromCharCode(code);
  }
  if (spec.length === 1) return spec;
  throw new VosError('invalid_params', `detach key "${spec}" must be one character or ^X (like ^\\ or ^])`);
}

export function describeKey(key: string): string {
  const code = key.charCodeAt(0);
  if (code < 0x20) return `Ctrl-${String.fromCharCode(code ^ 0x40)}`;
  return key;
}

export interface AttachOutcome {
  reason: 'detached' | 'exited' | 'disconnected';
  session: SessionInfo;
}

export function exitStatusOf(session: SessionInfo): number {
  if (!session.exit) return 0;
  if (session.exit.code !== null) return session.exit.code;
  return 128 + 1; // ended by a signal: report failure (the name is printed)
}

export async function attachTerminal(client: ApiClient, ref: string, detachKey: string): Promise<AttachOutcome> {
  const stdin = process.stdin;
  const stdout = process.stdout;
  if (!stdin.isTTY || !stdout.isTTY) {
    throw new VosError('invalid_params', 'attach needs a terminal on stdin and stdout (for scripts use vos send, screen and wait)');
  }

  let finish!: (o: AttachOutcome) => void;
  const done = new Promise<AttachOutcome>((resolve) => (finish = resolve));
  let id = ref;
  let ready = false;
  const early: ApiEvent[] = [];

  const onEvent = (e: ApiEvent): void => {
    if (!ready) {
      early.push(e); // until the reply tells the session's full id
      return;
    }
    if (!('id' in e) || e.id !== id) return;
    if (e.event === 'session.output') stdout.write(e.data);
    else if (e.event === 'session.resync') stdout.write(RESET_TERMINAL + e.snapshot);
    else if (e.event === 'session.exited') finish({ reason: 'exited', session: e.session });
    else if (e.event === 'session.disconnected') finish({ reason: 'disconnected', session: lastInfo! });
    else if (e.event === 'session.moved') follow(e.to);
  };
  /** Becomes a viewer of `target`: its screen first, then what came meanwhile. */
  const attachTo = async (target: string): Promise<SessionInfo> => {
    ready = false;
    const { session, snapshot } = await client.request('session.attach', { id: target, ...terminalSize(stdout), take: true });
    id = session.id;
    lastInfo = session;
    stdout.write(RESET_TERMINAL + snapshot);
    ready = true;
    for (const e of early.splice(0)) onEvent(e);
    if (session.state === 'exited') finish({ reason: 'exited', session });
    return session;
  };
  // The session moved to another machine: keep showing it, from there (through this agent).
  const follow = (to: string): void => {
    attachTo(to).catch(() => finish({ reason: 'disconnected', session: lastInfo! }));
  };
  const offEvent = client.onEvent(onEvent);
  let lastInfo: SessionInfo | null = null;
  const offClose = client.onClose(() => {
    if (lastInfo) finish({ reason: 'disconnected', session: lastInfo });
  });
  const first = await attachTo(ref);

  // How to leave, said once over the bottom row; a key or a few seconds take it away again
  // (the program's screen drawn once more, from the session's own).
  let hint: NodeJS.Timeout | null = null;
  let over = false;
  const takeHintAway = (): void => {
    if (!hint || over) return;
    clearTimeout(hint);
    hint = null;
    // In the stream, as a resync: the output before that point is in it, the output after follows.
    client.request('session.redraw', { id }).catch(() => {});
  };
  if (first.state !== 'exited' && (stdout.rows ?? 0) > 1) {
    stdout.write(hintOverlay(` vos: attached to ${first.name}. ${describeKey(detachKey)} detaches; it keeps running. `, stdout.columns ?? 80, stdout.rows ?? 24));
    hint = setTimeout(takeHintAway, HINT_MS);
  }

  const onResize = (): void => {
    client.request('session.resize', { id, ...terminalSize(stdout) }).catch(() => {});
  };
  const onInput = (text: string): void => {
    const at = text.indexOf(detachKey);
    if (at !== 0) takeHintAway();
    const before = at >= 0 ? text.slice(0, at) : text;
    if (before) client.request('session.input', { id, data: before }).catch(() => {});
    if (at >= 0) finish({ reason: 'detached', session: lastInfo! });
  };

  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  stdin.on('data', onInput);
  stdin.resume();
  stdout.on('resize', onResize);

  const outcome = await done;
  over = true;
  if (hint) clearTimeout(hint);
  stdin.off('data', onInput);
  stdout.off('resize', onResize);
  stdin.setRawMode(false);
  stdin.pause();
  offEvent();
  offClose();
  if (outcome.reason === 'detached') await client.request('session.detach', { id }).catch(() => {});
  // Detached: the program's screen goes with it (it runs on elsewhere), the prompt comes back on
  // a clean one. Ended or cut off: its last screen stays to be read.
  stdout.write(RESTORE_TERMINAL + (outcome.reason === 'detached' ? CLEAR_SCREEN : '\r\n'));
  return outcome;
}
