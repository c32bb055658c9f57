/**
 * One session: a program on a pty (kept by its terminal host, or by the agent through node-pty
 * where the runtime is not built; see terminal.ts), the screen mirror fed by it, and the viewers
 * watching it.
 *
 * The output path, in order, for every chunk the pty gives us:
 *   pty → batcher → each viewer that keeps up; and → mirror.write (sent to the mirror thread at
 *   the end of the turn, parsed there: mirror-thread.ts).
 * Flow control: when the mirror lags more than MIRROR_HIGH_WATER characters behind, the pty is
 * paused (the program blocks in write(), as on any terminal) until it catches up. Viewers never
 * pause the pty: one that does not drain is skipped and later resynchronised with a snapshot.
 */
import { existsSync } from 'node:fs';
import { VosError } from '../../api/errors.js';
import type { AgentMessage, AttachResult, ExitStatus, RelayedConnection, ScreenText, SessionInfo, SessionState } from '../../api/protocol.js';
import { describeExit } from '../../api/session-text.js';
import { childPids } from '../../base/process-tree.js';
import { signalName } from '../../base/signals.js';
import { OutputBatcher } from './output-batcher.js';
import { MirrorThread, type RemoteMirror, type ScreenShot } from './mirror-thread.js';
import { answerKind, OwedAnswers, QueryScanner } from './terminal-queries.js';
import type { ScreenPattern } from './screen-pattern.js';
import { HostTerminal } from './terminal-host.js';
import { spawnAgentPty, type SessionTerminal } from './terminal.js';
import { VIEWER_HIGH_WATER_BYTES, type ViewerSink } from './viewer.js';

// Above what the mirror lets gather in a flood (screen-mirror.ts, FLOOD_HOLD_CHARS).
const MIRROR_HIGH_WATER = 8 * 1024 * 1024;
const MIRROR_LOW_WATER = 1024 * 1024;
const PAUSE_SLICE_MS = 50;
/** Output held for a viewer while its snapshot was taken is sent in pieces of this size, one per turn. */
const HELD_PIECE_CHARS = 256 * 1024;

export const DEFAULT_COLS = 80;
export const DEFAULT_ROWS = 24;

/** What runs on the session's pty: the program itself, or vos-init launching or restoring it. */
export interface PtyLaunch {
  file: string;
  args: string[];
  /** Where it starts, when not the session's cwd: a restorer starts where it surely can (the
   * restored processes go back to their own directories, or it says which is missing). */
  cwd?: string;
}

export interface SessionSpec {
  id: string;
  name: string;
  /** The program as the user asked for it (shown in lists). */
  command: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  cols: number;
  rows: number;
  launch: PtyLaunch;
  /** The pod's control socket, when the session runs in a pod. */
  controlPath: string | null;
  /** Screen content to start the mirror with (a restored session's screen). */
  initialScreen?: string;
  /** The image a restored session came from. */
  restoredFrom?: string;
  /**
   * Run the launch under a terminal host (`init` is vos-init) listening at `socket`, so that the
   * program outlives the agent. Absent: a pty held by the agent (node-pty).
   */
  host?: { init: string; socket: string } | null;
  /** Without a pod (controlPath null): why it cannot be checkpointed or moved, with the fix. */
  noPodReason?: string;
  /** A program already running under a terminal host (a session of an earlier agent). */
  adopted?: { terminal: HostTerminal; socket: string; startedAt: number; restoreNote: string | null };
}

/** A session as written to `<state>/sessions/ID.json` (see SessionManager). */
export interface SessionFileRecord {
  id: string;
  name: string;
  command: string;
  args: string[];
  cwd: string;
  startedAt: number;
  controlPath: string | null;
  hostSocket: string | null;
  cols: number;
  rows: number;
  restoredFrom: string | null;
  restoreNote: string | null;
}

interface ViewerState {
  cols: number | null;
  rows: number | null;
  /** Skipped by live output until its connection drains. */
  lagging: boolean;
  /** Output held back while the viewer's snapshot is being taken and sent. */
  held: string[] | null;
  /** Its terminal's answers to the program's questions, which the agent gave already. */
  owed: OwedAnswers;
  /** The exit was told while its output was held: it is told after that output (release). */
  exitHeld?: boolean;
}

interface Waiter {
  test: (screen: ScreenText) => boolean;
  resolve: (screen: ScreenText) => void;
  reject: (err: VosError) => void;
  timer: NodeJS.Timeout;
}

export type { ScreenShot } from './mirror-thread.js';

export class Session {
  readonly id: string;
  readonly name: string;
  readonly command: string;
  readonly args: string[];
  readonly cwd: string;
  readonly pid: number;
  readonly startedAt: number;

  private state: SessionState = 'running';
  private exit: ExitStatus | null = null;
  private endedAt: number | null = null;
  private readonly pty: SessionTerminal;
  private readonly mirror: RemoteMirror;
  private readonly batcher: OutputBatcher;
  private readonly viewers = new Map<ViewerSink, ViewerState>();
  private activeViewer: ViewerSink | null = null;
  private readonly waiters = new Set<Waiter>();
  private paused = false;
  private lastOutputAt = 0;
  private pauseTimer: NodeJS.Timeout | null = null;
  private waiterCheckScheduled = false;
  private checkingWaiters = false;
  private checkWaitersAgain = false;
  private readonly exited: Promise<void>;
  /** The program ended and all it printed is on the mirror: a waiter's text can come no more. */
  private outputComplete = false;
  /** The questions the program asks its terminal (see terminal-queries.ts). */
  private readonly queries = new QueryScanner();

  /** Called when anything in `info()` changes. */
  onChange: ((session: Session) => void) | null = null;
  /** Called when what `record()` says changes. */
  onRecordChange: ((session: Session) => void) | null = null;
  /** The terminal host's socket, when the program runs under one. */
  readonly hostSocket: string | null;
  /** Without a pod: why it cannot be checkpointed or moved (see SessionSpec). */
  readonly noPodReason: string;

  readonly controlPath: string | null;
  readonly restoredFrom: string | null;
  /** See SessionInfo.restoreNote; set once the restore has answered. */
  private restoreNote: string | null = null;
  /** Its program is being ended here because it moved (see departing()). */
  private leaving = false;
  /** Its pod's control socket was there once (podReady waits no more). */
  private podSeen = false;
  /** The session's program as the host sees it (found after start when it runs in a pod). */
  private programPid: number | null = null;

  constructor(spec: SessionSpec) {
    this.id = spec.id;
    this.name = spec.name;
    this.command = spec.command;
    this.args = spec.args;
    this.cwd = spec.cwd;
    this.controlPath = spec.controlPath;
    this.noPodReason = spec.noPodReason ?? 'it was started without a pod (the vOS runtime was not built then)';
    this.restoredFrom = spec.restoredFrom ?? null;
    this.startedAt = spec.adopted?.startedAt ?? Date.now();
    this.restoreNote = spec.adopted?.restoreNote ?? null;
    this.hostSocket = spec.adopted?.socket ?? spec.host?.socket ?? null;
    this.mirror = MirrorThread.shared().open(spec.cols, spec.rows);
    this.mirror.onParsed = () => this.afterParse();
    this.mirror.onAnswer = (data) => this.answer(data);
    // A saved screen was answered when it was live.
    if (spec.initialScreen) this.mirror.write(spec.initialScreen, true);
    this.batcher = new OutputBatcher((data) => this.deliver(data));
    const launch = {
      ...spec.launch,
      // A restorer starts in the state directory: the image's working directory may be gone,
      // and the restorer, not the spawn, is to say so.
      cwd: spec.launch.cwd ?? spec.cwd,
      env: { ...spec.env, TERM: 'xterm-256color', VOS_SESSION: spec.id },
      cols: spec.cols,
      rows: spec.rows,
    };
    try {
      if (spec.adopted) this.pty = spec.adopted.terminal;
      else if (spec.host) this.pty = HostTerminal.start(spec.host.init, spec.host.socket, launch);
      else this.pty = spawnAgentPty(launch);
    } catch (err) {
      this.mirror.dispose();
      if (err instanceof VosError) throw err;
      throw new VosError('spawn_failed', `could not start ${spec.command}: ${(err as Error).message}`);
    }
    this.pid = this.pty.pid;
    if (spec.controlPath) void this.findProgram();
    // An adopted session's journal was answered by the agent that saw it live.
    const adopted = spec.adopted !== undefined;
    this.pty.onData((data, replayed) => this.onOutput(data, adopted && replayed === true));
    this.exited = new Promise<void>((resolve) => {
      this.pty.onExit(({ exitCode, signal }) => {
        void this.onExit(exitCode, signal ?? 0).finally(resolve);
      });
    });
  }

  info(): SessionInfo {
    return {
      id: this.id,
      name: this.name,
      command: this.command,
      args: this.args,
      cwd: this.cwd,
      pid: this.programPid ?? this.pid,
      startedAt: this.startedAt,
      endedAt: this.endedAt,
      state: this.state,
      exit: this.exit,
      cols: this.mirror.cols,
      rows: this.mirror.rows,
      viewers: this.viewers.size,
      pod: this.controlPath !== null,
      cannotCheckpoint: this.controlPath === null ? this.noPodReason : null,
      restoredFrom: this.restoredFrom,
      restoreNote: this.restoreNote,
      ...this.relayedInfo(),
    };
  }

  /** A moved session's connections that the machine it came from relays (see showRelayed). */
  private relayedConnections: (() => RelayedConnection[]) | null = null;

  /**
   * The receiver's list of the connections relayed to it; watchers hear of it now and
   * whenever `relayedChanged` says the list changed (one named, one ended).
   */
  showRelayed(list: () => RelayedConnection[]): void {
    this.relayedConnections = list;
    this.onChange?.(this);
  }

  relayedChanged(): void {
    if (this.relayedConnections) this.onChange?.(this);
  }

  private relayedInfo(): { relayed?: RelayedConnection[] } {
    const relayed = this.relayedConnections?.() ?? [];
    return relayed.length ? { relayed } : {};
  }

  get running(): boolean {
    return this.state === 'running';
  }

  /** Resolves when the program has exited and its last output is on the mirror and sent. */
  /**
   * While a migration ends the program here on purpose (set just before the original's pod is
   * ended), its end is a move, not an exit: viewers and watchers are not told of an exit, they
   * hear `session.moved`. Turned off again (the move failed), a held-back exit is told after all.
   */
  departing(on: boolean): void {
    this.leaving = on;
    if (!on && this.state === 'exited') this.announceExit();
  }

  /** Sends a message to every viewer (e.g. that the session moved to another machine). */
  notifyViewers(message: AgentMessage): void {
    for (const viewer of this.viewers.keys()) viewer.send(message);
  }

  /**
   * Fills the screen of a session restored from a stream, whose saved screen arrives after the
   * session started (its program prints nothing before it is restored).
   */
  primeScreen(snapshot: string): void {
    this.mirror.write(snapshot, true);
  }

  noteRestore(note: string): void {
    this.restoreNote = note;
    this.onChange?.(this);
    this.onRecordChange?.(this);
  }

  /** Adds to the restore note (after what the restorer said). */
  addRestoreNote(note: string): void {
    this.noteRestore(this.restoreNote ? `${this.restoreNote}; ${note}` : note);
  }

  /** True when the program goes on after the agent lets go of it (see `release`). */
  get outlivesAgent(): boolean {
    return this.pty.outlivesAgent;
  }

  /** What a later agent needs to find this session again (see SessionManager's records). */
  record(): SessionFileRecord {
    return {
      id: this.id,
      name: this.name,
      command: this.command,
      args: this.args,
      cwd: this.cwd,
      startedAt: this.startedAt,
      controlPath: this.controlPath,
      hostSocket: this.hostSocket,
      cols: this.mirror.cols,
      rows: this.mirror.rows,
      restoredFrom: this.restoredFrom,
      restoreNote: this.restoreNote,
    };
  }

  whenExited(): Promise<void> {
    return this.exited;
  }

  // -------------------------------------------------------------------------------------------
  // Input and control

  input(data: string, from?: ViewerSink): void {
    this.requireRunning('type into');
    if (from) {
      this.makeActive(from);
      // Its terminal's answers to questions the agent answered already (terminal-queries.ts).
      const st = this.viewers.get(from);
      if (st) data = st.owed.filter(data, Date.now());
      if (!data) return;
    }
    this.pty.write(data);
  }

  /** Resizes the session. From a viewer, it also records that viewer's size and makes it active. */
  resize(cols: number, rows: number, from?: ViewerSink): void {
    this.requireRunning('resize');
    const st = from ? this.viewers.get(from) : undefined;
    if (from && st) {
      st.cols = cols;
      st.rows = rows;
      this.activeViewer = from;
    }
    this.applySize(cols, rows);
  }

  kill(signal: NodeJS.Signals): void {
    this.requireRunning('signal');
    if (this.programPid === null) {
      // vos-init (which passes it on to the program) or the program itself, through whoever
      // holds the pty: the host never signals a process it has reaped.
      this.pty.signal(signal);
      return;
    }
    try {
      process.kill(this.programPid, signal);
    } catch (err) {
      // ESRCH: it exited a moment ago; the exit event is on its way.
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }

  /**
   * Marks the point of the screen a checkpoint saves (call it while the session's pod is frozen):
   * once all the program printed has arrived (at once when its terminal host says it read the
   * master dry, otherwise once it has been quiet for `quietMs`, at most `maxMs`). Resolves then,
   * so that the pod can run again; `shot`, the screen at that point, is serialized after it:
   * output that comes later is queued behind it in the mirror.
   */
  async screenCut(quietMs = 10, maxMs = 500): Promise<{ shot: Promise<ScreenShot> }> {
    // What the terminal host has read or can read now comes first (it is one hop further away
    // than a pty of our own). A host that read its master dry has all of it (the program is
    // frozen: it prints nothing more); otherwise whatever was still in flight, until quiet.
    const complete = await this.pty.sync();
    const start = Date.now();
    let last = this.lastOutputAt;
    while (!complete) {
      await new Promise((r) => setTimeout(r, quietMs));
      if (this.lastOutputAt === last || Date.now() - start > maxMs) break;
      last = this.lastOutputAt;
    }
    this.batcher.flush();
    const shot = this.mirror.shot();
    return { shot };
  }

  /**
   * Resolves once the session's pod listens on its control socket. Right after a start (or a
   * restore) the pod's init may not have bound it yet: a checkpoint asked for then waits for it
   * (at most `startMs` after the start) instead of failing with "no such file". Later, a missing
   * socket is the helper's to report (the pod is gone). Refuses when the program ended.
   */
  async podReady(startMs = 10_000): Promise<void> {
    const path = this.controlPath;
    if (!path) throw new VosError('unsupported', `session ${this.id} cannot be checkpointed or moved: ${this.noPodReason}`);
    const deadline = this.startedAt + startMs;
    // Pod init listens before it starts the program: once the program is found, or the socket
    // was there once, a missing socket means the pod is gone.
    while (this.programPid === null && !this.podSeen && Date.now() < deadline && !existsSync(path)) {
      if (!this.running) throw new VosError('session_exited', `session ${this.id} has ended`);
      await new Promise((r) => setTimeout(r, 20));
    }
    this.podSeen = true;
  }

  /** In a pod, the pty's process is vos-init: the program is its grandchild (it may take seconds
   * to appear on a loaded machine). */
  private async findProgram(): Promise<void> {
    for (let i = 0; i < 500 && this.running; i++) {
      const podInit = childPids(this.pid)[0];
      const program = podInit ? Math.min(...childPids(podInit)) : Infinity;
      if (Number.isFinite(program)) {
        this.programPid = program;
        this.onChange?.(this);
        return;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  // -------------------------------------------------------------------------------------------
  // Viewers

  /**
   * Adds a viewer and takes its snapshot. Live output for this viewer is held until `release()`
   * is called, which the caller does right after sending the reply: the snapshot and the output
   * after it join without a gap or an overlap. `wanted` is asked just before the snapshot is
   * serialized (megabytes, and CPU): a viewer that left by then gets an empty one it never sees.
   */
  async attach(
    viewer: ViewerSink,
    size: { cols: number; rows: number } | null,
    wanted: () => boolean = () => true,
    take = false,
  ): Promise<{ result: AttachResult; release: () => void }> {
    const known = this.viewers.get(viewer);
    const st: ViewerState = known ?? { cols: null, rows: null, lagging: false, held: null, owed: new OwedAnswers() };
    if (size) {
      st.cols = size.cols;
      st.rows = size.rows;
    }
    if (!known) {
      this.viewers.set(viewer, st);
      this.onChange?.(this);
    }
    // Watching does not take the size (tmux's "latest"): only the first viewer's attach does,
    // or one while no viewer is active, or one that asks to (`take`); typing or resizing takes
    // it later (input, resize).
    if (size && this.running && (take || this.activeViewer === null || !this.viewers.has(this.activeViewer))) {
      this.activeViewer = viewer;
      this.applySize(size.cols, size.rows);
    }
    const snapshot = await this.snapshotFor(st, wanted);
    return { result: { session: this.info(), snapshot }, release: () => this.release(viewer, st) };
  }

  detach(viewer: ViewerSink): void {
    if (!this.viewers.delete(viewer)) return;
    if (this.activeViewer === viewer) this.activeViewer = null;
    this.onChange?.(this);
  }

  /** The viewer gets the screen again, as a `session.resync` in its stream (protocol.ts). */
  async redraw(viewer: ViewerSink): Promise<void> {
    const st = this.viewers.get(viewer);
    if (!st) throw new VosError('invalid_params', `this client does not view session ${this.id}: attach first`);
    await this.resync(viewer, st);
  }

  hasViewer(viewer: ViewerSink): boolean {
    return this.viewers.has(viewer);
  }

  // -------------------------------------------------------------------------------------------
  // Reading the screen

  screen(): Promise<ScreenText> {
    return this.mirror.text(this.id);
  }

  /** Resolves once `pattern` matches the visible screen (rows joined with "\n"); RE2 takes linear time. */
  async waitFor(pattern: ScreenPattern, timeoutMs: number): Promise<ScreenText> {
    const test = (s: ScreenText): boolean => pattern.test(s.lines.join('\n'));
    const now = await this.screen();
    if (test(now)) return now;
    if (!this.running) {
      // It ended while the screen was read: its last output may have come after that point.
      await this.exited;
      const last = await this.mirror.text(this.id);
      if (test(last)) return last;
      throw this.exitedBeforeMatch(pattern);
    }
    return new Promise<ScreenText>((resolve, reject) => {
      const waiter: Waiter = {
        test,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(new VosError('timeout', `timed out after ${timeoutMs / 1000} s waiting for /${pattern.source}/ on session ${this.id}`));
        }, timeoutMs),
      };
      this.waiters.add(waiter);
      // Output parsed since the check above had no waiter to wake: look again.
      this.scheduleWaiterCheck();
    });
  }

  // -------------------------------------------------------------------------------------------

  /** Ends the program (hangup, then kill) and releases the pty and the mirror. */
  async dispose(graceMs = 2000): Promise<void> {
    if (this.running) {
      this.pty.signal('SIGHUP');
      const timer = setTimeout(() => this.pty.signal('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    this.pty.end();
    this.forget();
  }

  /**
   * The agent lets go of the session and leaves its program running under its terminal host
   * (the agent stops); a later agent adopts it. Only for sessions that `outlivesAgent`.
   */
  letGo(): void {
    this.pty.release();
    this.forget();
  }

  private forget(): void {
    if (this.pauseTimer) clearTimeout(this.pauseTimer);
    this.batcher.dispose();
    this.mirror.dispose();
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(new VosError('unknown_session', `session ${this.id} was removed`));
    }
    this.waiters.clear();
    this.viewers.clear();
  }

  private onOutput(data: string, quiet: boolean): void {
    this.lastOutputAt = Date.now();
    // Each viewer that will see a question owes its answer from here on (before it can see it).
    const questions = this.queries.scan(data);
    for (const kind of questions) {
      for (const st of this.viewers.values()) if (!st.lagging) st.owed.owe(kind, this.lastOutputAt);
    }
    // Viewers first: the mirror's share goes to its thread after their batch is out.
    this.batcher.push(data);
    // A question is answered as soon as the mirror gets to it: the program waits for the answer.
    this.mirror.write(data, quiet, questions.length > 0, this.waiters.size > 0 || this.paused);
    if (!this.paused && this.mirror.pendingChars > MIRROR_HIGH_WATER) this.pausePty();
  }

  /** The mirror's answer to a question of the program: the terminal's answer, given always. */
  private answer(data: string): void {
    if (!this.running || answerKind(data) === null) return;
    this.pty.write(data);
  }

  private afterParse(): void {
    if (this.paused && this.mirror.pendingChars < MIRROR_LOW_WATER) this.resumePty();
    if (this.waiters.size > 0) this.scheduleWaiterCheck();
  }

  /**
   * Pauses reading the pty while the mirror catches up, but never for long at a time: node-pty
   * drops what is still unread 200 ms after the program exits, so a paused pty is resumed at
   * least every PAUSE_SLICE_MS and pauses again only if the mirror is still behind.
   */
  private pausePty(): void {
    this.paused = true;
    this.pty.pause();
    this.pauseTimer = setTimeout(() => this.resumePty(), PAUSE_SLICE_MS);
  }

  private resumePty(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.pauseTimer) clearTimeout(this.pauseTimer);
    this.pauseTimer = null;
    this.pty.resume();
  }

  private scheduleWaiterCheck(): void {
    if (this.waiterCheckScheduled) return;
    this.waiterCheckScheduled = true;
    setImmediate(() => {
      this.waiterCheckScheduled = false;
      void this.checkWaiters();
    });
  }

  /** Reads the screen and wakes the waiters it matches; one read at a time, again if asked meanwhile. */
  private async checkWaiters(): Promise<void> {
    if (this.checkingWaiters) {
      this.checkWaitersAgain = true;
      return;
    }
    this.checkingWaiters = true;
    try {
      do {
        this.checkWaitersAgain = false;
        if (this.waiters.size === 0) return;
        // Known before the read: then the screen read has all the output there will be.
        const complete = this.outputComplete;
        const screen = await this.mirror.text(this.id);
        for (const w of this.waiters) {
          if (w.test(screen)) {
            this.waiters.delete(w);
            clearTimeout(w.timer);
            w.resolve(screen);
          } else if (complete) {
            // Not merely !running: between the exit and the mirror taking the last output, that
            // output (the very text waited for) may still be on its way.
            this.waiters.delete(w);
            clearTimeout(w.timer);
            w.reject(this.exitedBeforeMatch(null));
          }
        }
      } while (this.checkWaitersAgain);
    } finally {
      this.checkingWaiters = false;
    }
  }

  private exitedBeforeMatch(pattern: ScreenPattern | null): VosError {
    const what = pattern ? ` /${pattern.source}/` : ' the text';
    return new VosError('session_exited', `session ${this.id} ended (${describeExit(this.exit)}) without showing${what}`);
  }

  private deliver(data: string): void {
    for (const [viewer, st] of this.viewers) {
      if (st.held) st.held.push(data);
      else this.sendOutput(viewer, st, data);
    }
  }

  /** Sends live output to a viewer, unless it lags: then it waits for a resync. */
  private sendOutput(viewer: ViewerSink, st: ViewerState, data: string): void {
    if (st.lagging) return;
    if (viewer.bufferedBytes(this.id) > (viewer.outputHighWater ?? VIEWER_HIGH_WATER_BYTES)) {
      st.lagging = true;
      viewer.whenDrained(() => void this.resync(viewer, st), this.id);
      return;
    }
    viewer.send({ t: 'event', event: 'session.output', id: this.id, data });
  }

  /** A lagging viewer has drained: give it the screen as it is now and resume live output. */
  private async resync(viewer: ViewerSink, st: ViewerState): Promise<void> {
    if (this.viewers.get(viewer) !== st) return;
    const snapshot = await this.snapshotFor(st, () => this.viewers.get(viewer) === st);
    if (this.viewers.get(viewer) !== st) return;
    viewer.send({ t: 'event', event: 'session.resync', id: this.id, snapshot });
    this.release(viewer, st);
  }

  /**
   * Takes a snapshot at the current point of the output: what the batcher holds goes to everyone
   * else first; output from here on is held for this viewer until `release`.
   */
  private snapshotFor(st: ViewerState, wanted: () => boolean): Promise<string> {
    // The batch goes to everyone else; this viewer has it in its snapshot (a new viewer got it
    // before its attach reply, and then again in the snapshot).
    st.lagging = true;
    this.batcher.flush();
    st.lagging = false;
    st.held = [];
    return this.mirror.shot().then((shot) => (wanted() ? shot.snapshot : ''));
  }

  /**
   * Sends what was held for a viewer while its snapshot was taken, then live output again. What
   * a flood held goes a piece of HELD_PIECE_CHARS per turn of the event loop (never one message
   * of many megabytes); output that comes meanwhile is held behind it.
   */
  private release(viewer: ViewerSink, st: ViewerState): void {
    const held = st.held;
    if (!held || this.viewers.get(viewer) !== st) {
      st.held = null;
      return;
    }
    let n = 0;
    for (let size = 0; n < held.length && size < HELD_PIECE_CHARS; n++) size += held[n]!.length;
    if (n > 0) this.sendOutput(viewer, st, held.splice(0, n).join(''));
    if (held.length > 0 && !st.lagging) {
      // A new snapshot (a resync) replaces `held`: this one is done then.
      setImmediate(() => st.held === held && this.release(viewer, st));
      return;
    }
    st.held = null; // all sent, or it lags again: its next resync brings it the screen
    if (st.exitHeld && !st.lagging) {
      // A viewer resynchronising or attaching as the program ended: the exit comes after its
      // screen and the last output, once (an attach's reply may have said it ended already);
      // one that lags again hears it after its next resync.
      st.exitHeld = false;
      viewer.send({ t: 'event', event: 'session.exited', id: this.id, session: this.info() });
    }
  }

  private makeActive(viewer: ViewerSink): void {
    if (this.activeViewer === viewer) return;
    const st = this.viewers.get(viewer);
    if (!st) return;
    this.activeViewer = viewer;
    if (st.cols !== null && st.rows !== null) this.applySize(st.cols, st.rows);
  }

  private applySize(cols: number, rows: number): void {
    if (cols === this.mirror.cols && rows === this.mirror.rows) return;
    this.pty.resize(cols, rows);
    this.mirror.resize(cols, rows);
    this.onChange?.(this);
  }

  private requireRunning(what: string): void {
    if (!this.running) {
      throw new VosError('session_exited', `cannot ${what} session ${this.id}: it has ended (${describeExit(this.exit)})`);
    }
  }

  private async onExit(exitCode: number, signal: number): Promise<void> {
    this.state = 'exited';
    this.endedAt = Date.now();
    this.exit = signal ? { code: null, signal: signalName(signal) } : { code: exitCode, signal: null };
    // Let the last output reach the mirror and the viewers before anyone hears of the exit.
    await this.mirror.settled();
    this.batcher.flush();
    this.outputComplete = true;
    if (!this.leaving) this.announceExit();
  }

  private announceExit(): void {
    const info = this.info();
    for (const [viewer, st] of this.viewers) {
      if (st.held) {
        st.exitHeld = true; // told after the held output (release)
        continue;
      }
      viewer.send({ t: 'event', event: 'session.exited', id: this.id, session: info });
    }
    void this.checkWaiters();
    this.onChange?.(this);
  }
}
