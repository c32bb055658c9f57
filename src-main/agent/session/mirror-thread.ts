/**
 * The agent's side of its mirror thread (mirror-worker.ts): each session's screen mirror lives
 * there, and the session holds a `RemoteMirror`, a handle that sends it output and asks it for
 * the screen. The agent's event loop then never parses output (a flood in four sessions held it
 * up for tens of milliseconds at a time); it only passes strings on.
 *
 * One thread serves every session of the process. If it dies (it should not: xterm takes any
 * bytes), the mirrors start again empty on a new one, reads waiting on it get an empty screen,
 * and the log says so: the sessions and their programs go on.
 */
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ScreenText } from '../../api/protocol.js';
import { packageRoot } from '../../base/package-paths.js';
import type { FromMirror, MirrorText, ToMirror } from './mirror-protocol.js';

/** A session's screen and scrollback at a point, as escape sequences, with its size. */
export interface ScreenShot {
  snapshot: string;
  cols: number;
  rows: number;
}

type ReadReply = Extract<FromMirror, { t: 'read' }>;

/** A read's answer when there is no mirror to read. */
const NO_MIRROR: ReadReply = { t: 'read', req: 0, shot: null, text: null };

/** Threads lost before no new one is started. */
const MAX_LOSSES = 3;

/** The worker's script: beside this module when built, the built one when run from source (tests). */
function workerScript(): string {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.js')) return join(here, '..', 'mirror-worker.js');
  return join(packageRoot(), 'out', 'node', 'src-main', 'agent', 'session', 'mirror-worker.js');
}

export class MirrorThread {
  // One thread per process, shared by all its sessions: started with the first mirror.
  private static instance: MirrorThread | null = null;

  static shared(): MirrorThread {
    return (MirrorThread.instance ??= new MirrorThread());
  }

  /** Where trouble with the thread is told (the agent's log). */
  log: (message: string) => void = () => {};

  private worker: Worker | null = null;
  /** Threads lost so far; after MAX_LOSSES no new one is started (the screens stay empty). */
  private losses = 0;
  private readonly mirrors = new Map<number, RemoteMirror>();
  private readonly reads = new Map<number, (reply: ReadReply) => void>();
  private nextMirror = 1;
  private nextRead = 1;

  /** A new mirror of `cols` x `rows`, empty. */
  open(cols: number, rows: number): RemoteMirror {
    const mirror = new RemoteMirror(this, this.nextMirror++, cols, rows);
    this.mirrors.set(mirror.num, mirror);
    this.post({ t: 'open', mirror: mirror.num, cols, rows });
    return mirror;
  }

  post(message: ToMirror): void {
    this.thread()?.postMessage(message);
  }

  read(mirror: number, what: 'shot' | 'text' | 'point'): Promise<ReadReply> {
    const thread = this.thread();
    if (!thread) return Promise.resolve(NO_MIRROR);
    const req = this.nextRead++;
    return new Promise<ReadReply>((resolve) => {
      this.reads.set(req, resolve);
      thread.postMessage({ t: 'read', mirror, req, what } satisfies ToMirror);
    });
  }

  forget(mirror: number): void {
    if (this.mirrors.delete(mirror)) this.post({ t: 'close', mirror });
  }

  private thread(): Worker | null {
    if (this.worker || this.losses >= MAX_LOSSES) return this.worker;
    let worker: Worker;
    try {
      worker = new Worker(workerScript());
    } catch (err) {
      this.losses = MAX_LOSSES;
      this.log(`cannot start the screen mirror thread (${(err as Error).message}): sessions show no screen to viewers that attach later`);
      return null;
    }
    // The agent's servers keep the process alive, not this thread.
    worker.unref();
    worker.on('message', (message: FromMirror) => this.receive(message));
    worker.on('error', (err) => this.lost(worker, err.message));
    worker.on('exit', (code) => this.lost(worker, `it exited with status ${code}`));
    this.worker = worker;
    return worker;
  }

  private receive(message: FromMirror): void {
    switch (message.t) {
      case 'parsed':
        this.mirrors.get(message.mirror)?.parsed(message.chars);
        break;
      case 'answer':
        this.mirrors.get(message.mirror)?.onAnswer?.(message.data);
        break;
      case 'read': {
        const resolve = this.reads.get(message.req);
        this.reads.delete(message.req);
        resolve?.(message);
        break;
      }
    }
  }

  private lost(worker: Worker, why: string): void {
    if (this.worker !== worker) return;
    this.worker = null;
    this.losses++;
    const again = this.losses < MAX_LOSSES ? 'start again empty' : 'stay empty (it stopped too often to start it again)';
    if (this.mirrors.size > 0) this.log(`the screen mirror thread stopped (${why}): the ${this.mirrors.size} sessions' screens ${again}`);
    const reads = [...this.reads.values()];
    this.reads.clear();
    for (const resolve of reads) resolve(NO_MIRROR);
    for (const mirror of this.mirrors.values()) mirror.reopen();
  }
}

/** A session's screen mirror, kept in the mirror thread. */
export class RemoteMirror {
  private pending = 0;
  private closed = false;
  private size: { cols: number; rows: number };
  /**
   * Output written in this turn of the event loop, sent to the thread at its end (after the
   * viewers got it: waking the thread does not compete with an echoed key on its way out), or
   * before anything else is asked of the thread.
   */
  private unsent: { parts: string[]; quiet: boolean; asks: boolean; report: boolean } | null = null;
  private sendScheduled = false;

  /** Called after output has been parsed (so waiters can look at the screen again). */
  onParsed: (() => void) | null = null;
  /** The mirror's answer to a question the program asked its terminal (see ScreenMirror.onAnswer). */
  onAnswer: ((data: string) => void) | null = null;

  constructor(
    private readonly thread: MirrorThread,
    readonly num: number,
    cols: number,
    rows: number,
  ) {
    this.size = { cols, rows };
  }

  /** The size last asked for (the mirror takes it in order with the output). */
  get cols(): number {
    return this.size.cols;
  }

  get rows(): number {
    return this.size.rows;
  }

  /** Characters written but not yet parsed. */
  get pendingChars(): number {
    return this.pending;
  }

  /**
   * `quiet`: questions in `data` are not answered (a saved screen, a journal already answered).
   * `asks`: `data` asks the terminal a question (the mirror gets to it without delay).
   * `report`: `onParsed` is wanted as soon as it is parsed (see mirror-protocol.ts); otherwise
   * `pendingChars` may stay up to REPORT_CHARS above what is still unparsed.
   */
  write(data: string, quiet = false, asks = false, report = false): void {
    if (this.closed || data.length === 0) return;
    this.pending += data.length;
    if (this.unsent && this.unsent.quiet !== quiet) this.sendWrites();
    const u = (this.unsent ??= { parts: [], quiet, asks: false, report: false });
    u.parts.push(data);
    u.asks ||= asks;
    u.report ||= report;
    if (!this.sendScheduled) {
      this.sendScheduled = true;
      setImmediate(() => {
        this.sendScheduled = false;
        this.sendWrites();
      });
    }
  }

  private sendWrites(): void {
    const u = this.unsent;
    if (!u) return;
    this.unsent = null;
    const data = u.parts.length === 1 ? u.parts[0]! : u.parts.join('');
    this.thread.post({ t: 'write', mirror: this.num, data, quiet: u.quiet, asks: u.asks, report: u.report });
  }

  resize(cols: number, rows: number): void {
    if (this.closed || (cols === this.size.cols && rows === this.size.rows)) return;
    this.size = { cols, rows };
    this.sendWrites();
    this.thread.post({ t: 'resize', mirror: this.num, cols, rows });
  }

  /** The screen and scrollback once all output written so far is parsed (and nothing after). */
  async shot(): Promise<ScreenShot> {
    this.sendWrites();
    const reply = this.closed ? null : await this.thread.read(this.num, 'shot');
    return reply?.shot ?? { snapshot: '', cols: this.size.cols, rows: this.size.rows };
  }

  /** The visible rows, as `shot` for the point. */
  async text(id: string): Promise<ScreenText> {
    this.sendWrites();
    const reply = this.closed ? null : await this.thread.read(this.num, 'text');
    return { id, ...(reply?.text ?? this.blank()) };
  }

  /** Resolves once all output written so far is parsed. */
  async settled(): Promise<void> {
    this.sendWrites();
    if (!this.closed) await this.thread.read(this.num, 'point');
  }

  dispose(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsent = null;
    this.thread.forget(this.num);
  }

  /** From the thread: `chars` more of the output are parsed. */
  parsed(chars: number): void {
    this.pending = Math.max(0, this.pending - chars);
    this.onParsed?.();
  }

  /** From the thread: it started again, without this mirror's screen. */
  reopen(): void {
    this.pending = 0;
    this.unsent = null;
    this.thread.post({ t: 'open', mirror: this.num, cols: this.size.cols, rows: this.size.rows });
    this.onParsed?.();
  }

  private blank(): MirrorText {
    return { cols: this.size.cols, rows: this.size.rows, cursor: { x: 0, y: 0 }, lines: Array.from({ length: this.size.rows }, () => '') };
  }
}
