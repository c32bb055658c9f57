/**
 * Terminal queries: a program asks its terminal something (where the cursor is, what terminal
 * it is, a mode's state) and waits for the answer on its input. In a session the agent is the
 * terminal that always answers, from its screen mirror (which parsed the question in order with
 * everything printed before it, so the cursor position is exact), whether viewers are attached
 * or not. Viewers' terminals (the CLI's real terminal, the app's xterm.js) see the question too
 * and answer it as well: those answers are dropped, so the program gets exactly one.
 *
 * How a viewer's answer is recognised: each question seen in the program's output (scanned
 * here, in order, before any viewer sees it) makes each viewer owe one answer of that kind for
 * ANSWER_WINDOW_MS; the first reply-shaped sequence of that kind in the viewer's input within
 * the window is dropped. A cursor position report `ESC [ row ; col R` has the shape of a key
 * (modified F3 is `ESC [ 1 ; mod R`): such a key typed while the viewer owes a position report
 * is dropped in its place (and the late report then passes). Outside that window keys pass.
 * A reply split across two input messages is not recognised (terminals send one in one write).
 */

/** The questions the agent answers, by kind. */
export type QueryKind = 'status' | 'cursor' | 'cursor-dec' | 'da1' | 'da2' | 'mode' | 'setting';

/** How long a viewer may take to answer a question before its answer counts as input. */
export const ANSWER_WINDOW_MS = 5_000;
/** An unfinished sequence kept from one chunk of output to the next is at most this long. */
const TAIL_MAX = 64;

// ESC [ 5 n | ESC [ 6 n | ESC [ ? 6 n | ESC [ c / ESC [ 0 c | ESC [ > c / ESC [ > 0 c |
// ESC [ (?) Ps $ p (DECRQM) | ESC P $ q Pt ESC \ (DECRQSS)
const QUERY = /\x1b\[(?:(5n)|(6n)|(\?6n)|(0?c)|(>0?c)|(\??\d+\$p))|\x1bP\$q([^\x1b]{0,32})\x1b\\/g;
// What may still become a query when more output comes.
const QUERY_PREFIX = /^\x1b(?:\[(?:[?>]?\d*\$?)?|P(?:\$(?:q[^\x1b]{0,32}\x1b?)?)?)?$/;

function queryKind(m: RegExpExecArray): QueryKind {
  if (m[1]) return 'status';
  if (m[2]) return 'cursor';
  if (m[3]) return 'cursor-dec';
  if (m[4]) return 'da1';
  if (m[5]) return 'da2';
  if (m[6]) return 'mode';
  return 'setting';
}

// The answers, as a terminal sends them (and as the mirror does).
const REPLY = /\x1b\[(?:([0-3]n)|(\d+;\d+R)|(\?\d+;\d+(?:;\d+)?R)|(\?[\d;]*c)|(>[\d;]*c)|(\??\d+;\d+\$y))|\x1bP[01]\$r[^\x1b]{0,256}\x1b\\/g;

function replyKind(m: RegExpExecArray): QueryKind {
  if (m[1]) return 'status';
  if (m[2]) return 'cursor';
  if (m[3]) return 'cursor-dec';
  if (m[4]) return 'da1';
  if (m[5]) return 'da2';
  if (m[6]) return 'mode';
  return 'setting';
}

/** The kind of a whole answer (the mirror's), or null when it is not one the agent gives. */
export function answerKind(data: string): QueryKind | null {
  REPLY.lastIndex = 0;
  const m = REPLY.exec(data);
  return m && m.index === 0 && m[0].length === data.length ? replyKind(m) : null;
}

/** Finds the questions in a program's output, chunk by chunk (a question may be split). */
export class QueryScanner {
  private tail = '';

  /** The questions that end in this chunk, in order. */
  scan(chunk: string): QueryKind[] {
    const text = this.tail + chunk;
    const found: QueryKind[] = [];
    let end = 0;
    QUERY.lastIndex = 0;
    for (let m = QUERY.exec(text); m; m = QUERY.exec(text)) {
      found.push(queryKind(m));
      end = m.index + m[0].length;
    }
    // The earliest unfinished question at the end (a DECRQSS holds an ESC of its own).
    this.tail = '';
    for (let esc = text.indexOf('\x1b', Math.max(end, text.length - TAIL_MAX)); esc >= 0; esc = text.indexOf('\x1b', esc + 1)) {
      if (QUERY_PREFIX.test(text.slice(esc))) {
        this.tail = text.slice(esc);
        break;
      }
    }
    return found;
  }
}

/** The answers one viewer owes (see the top of this file). */
export class OwedAnswers {
  private owed: { kind: QueryKind; until: number }[] = [];

  owe(kind: QueryKind, now: number): void {
    this.owed.push({ kind, until: now + ANSWER_WINDOW_MS });
  }

  get pending(): number {
    return this.owed.length;
  }

  /** The viewer's input without the answers it owed (each owed answer is dropped once). */
  filter(input: string, now: number): string {
    this.owed = this.owed.filter((o) => o.until > now);
    if (this.owed.length === 0 || !input.includes('\x1b')) return input;
    REPLY.lastIndex = 0;
    let out = '';
    let from = 0;
    for (let m = REPLY.exec(input); m; m = REPLY.exec(input)) {
      const kind = replyKind(m);
      const at = this.owed.findIndex((o) => o.kind === kind);
      if (at < 0) continue;
      this.owed.splice(at, 1);
      out += input.slice(from, m.index);
      from = m.index + m[0].length;
    }
    return out + input.slice(from);
  }
}
