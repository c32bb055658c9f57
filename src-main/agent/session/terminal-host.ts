/**
 * The agent's side of a terminal host (`vos-init host`, src-main/runtime/init/host.c): the
 * process that keeps a session's pty so that its program outlives the agent. The agent starts
 * one per session (it detaches itself at once) and talks to it over its Unix socket in frames of
 * u8 type + u32 length (big-endian) + payload; ARCHITECTURE.md ("The terminal host") has the
 * protocol. To the session it is a SessionTerminal like a node-pty one.
 */
import { execFileSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { constants } from 'node:os';
import { StringDecoder } from 'node:string_decoder';
import { VosError } from '../../api/errors.js';
import type { SessionTerminal, TerminalExit, TerminalLaunch } from './terminal.js';

const F_HELLO = 1;
const F_JOURNAL = 2;
const F_OUTPUT = 3;
const F_EXIT = 4;
const F_SYNCED = 5;
const F_INPUT = 16;
const F_RESIZE = 17;
const F_SIGNAL = 18;
const F_END = 19;
const F_SYNC = 20;
/** A host answers SYNC at once; a paused connection delays it by a pause slice at most. */
const SYNC_TIMEOUT_MS = 2_000;
const HOST_PROTOCOL = 1;
const HELLO_BYTES = 41;
/** The host takes at most this much in one frame. */
const INPUT_FRAME_MAX = 64 * 1024;
/** A frame from the host is at most its journal (4 MiB) and a little; anything bigger is not one. */
const FRAME_MAX = 8 * 1024 * 1024;
const START_TIMEOUT_MS = 15_000;
/**
 * Output taken from one host in one turn of the event loop, beyond which reading waits for the
 * next turn: four sessions flooding at once would otherwise keep the loop busy for tens of
 * milliseconds at a time (libuv reads a socket dry before it looks at anything else).
 */
const TURN_BYTES = 128 * 1024;
const HELLO_TIMEOUT_MS = 5_000;

/**
 * `adopt` found nothing at the socket (no host listens there any more: it was killed, or the
 * machine rebooted), as opposed to a host that is there but did not answer in time.
 */
export class HostGoneError extends Error {
  override readonly name = 'HostGoneError';
}

/** What a host says first. */
export interface HostHello {
  hostPid: number;
  childPid: number;
  /** When it started the program (ms since the epoch). */
  startedAt: number;
  /** Bytes of output so far (more than the journal keeps when it wrapped). */
  totalOutput: number;
  /** The program's end, when it has ended and its output is all read. */
  exit: TerminalExit | null;
}

function frame(type: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(type, 0);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

export class HostTerminal implements SessionTerminal {
  readonly outlivesAgent = true;
  private buffered: Buffer = Buffer.alloc(0);
  private readonly decoder = new StringDecoder('utf8');
  private dataListener: ((data: string, replayed: boolean) => void) | null = null;
  private exitListener: ((exit: TerminalExit) => void) | null = null;
  /** Output and the exit that came before anyone listened (an adopted session's journal). */
  private early: { data: string; replayed: boolean }[] = [];
  private exitSeen: TerminalExit | null = null;
  private exitTold = false;
  private letGo = false;
  private helloWaiter: { resolve: (h: HostHello) => void; reject: (e: Error) => void } | null = null;
  hello: HostHello | null = null;
  /** The connection's error code, if it had one (see `lost`). */
  private socketError: string | null | undefined;
  private readonly syncs: ((synced: boolean) => void)[] = [];
  /** Paused by the session (its mirror lags), and for the rest of this turn (TURN_BYTES). */
  private flowPaused = false;
  private turnPaused = false;
  private turnBytes = 0;

  private constructor(
    private readonly socket: Socket,
    public pid: number,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.receive(chunk);
      this.countTurn(chunk.length);
    });
    socket.on('error', (e: NodeJS.ErrnoException) => (this.socketError ??= e.code ?? null)); // 'close' follows and says what matters
    socket.on('close', () => this.lost());
  }

  /**
   * Starts a host for a new session's program and connects to it. The host is up (its socket
   * listens) when this returns; output is kept there until we read it, so nothing is lost.
   */
  static start(init: string, socketPath: string, launch: TerminalLaunch): HostTerminal {
    let out: string;
    try {
      out = execFileSync(
        init,
        ['host', '--socket', socketPath, '--cols', String(launch.cols), '--rows', String(launch.rows), '--', launch.file, ...launch.args],
        { cwd: launch.cwd, env: launch.env, encoding: 'utf8', timeout: START_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'pipe'] },
      );
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      const why = (e.stdout || e.stderr || e.message).trim().replace(/^error /, '');
      throw new VosError('spawn_failed', `could not start the terminal host: ${why}`);
    }
    const m = /^ok (\d+) (\d+)/.exec(out);
    if (!m) throw new VosError('spawn_failed', `the terminal host said: ${out.trim() || 'nothing'}`);
    return new HostTerminal(connect(socketPath), Number(m[2]));
  }

  /**
   * Connects to the host of a session started by an earlier agent. Resolves with its HELLO;
   * rejects when there is no host there any more (the caller forgets the session).
   */
  static adopt(socketPath: string): Promise<{ terminal: HostTerminal; hello: HostHello }> {
    return new Promise((resolve, reject) => {
      const t = new HostTerminal(connect(socketPath), 0);
      const timer = setTimeout(() => {
        t.letGo = true;
        t.socket.destroy();
        reject(new Error(`the terminal host at ${socketPath} did not answer`));
      }, HELLO_TIMEOUT_MS);
      t.helloWaiter = {
        resolve: (hello) => {
          clearTimeout(timer);
          resolve({ terminal: t, hello });
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  onData(listener: (data: string, replayed: boolean) => void): void {
    this.dataListener = listener;
    for (const d of this.early.splice(0)) listener(d.data, d.replayed);
  }

  onExit(listener: (exit: TerminalExit) => void): void {
    this.exitListener = listener;
    this.tellExit();
  }

  write(data: string): void {
    const bytes = Buffer.from(data, 'utf8');
    for (let at = 0; at < bytes.length; at += INPUT_FRAME_MAX) {
      this.socket.write(frame(F_INPUT, bytes.subarray(at, at + INPUT_FRAME_MAX)));
    }
  }

  resize(cols: number, rows: number): void {
    const p = Buffer.alloc(4);
    p.writeUInt16BE(Math.min(Math.max(cols, 1), 65535), 0);
    p.writeUInt16BE(Math.min(Math.max(rows, 1), 65535), 2);
    this.socket.write(frame(F_RESIZE, p));
  }

  pause(): void {
    this.flowPaused = true;
    this.socket.pause();
  }

  resume(): void {
    this.flowPaused = false;
    if (!this.turnPaused) this.socket.resume();
  }

  /** Stops reading for the rest of this turn once TURN_BYTES came in it. */
  private countTurn(bytes: number): void {
    if (this.turnBytes === 0) {
      setImmediate(() => {
        this.turnBytes = 0;
        if (!this.turnPaused) return;
        this.turnPaused = false;
        if (!this.flowPaused && !this.socket.destroyed) this.socket.resume();
      });
    }
    this.turnBytes += bytes;
    if (this.turnBytes >= TURN_BYTES && !this.turnPaused) {
      this.turnPaused = true;
      this.socket.pause();
    }
  }

  signal(signal: NodeJS.Signals): void {
    const p = Buffer.alloc(4);
    p.writeUInt32BE(constants.signals[signal], 0);
    this.socket.write(frame(F_SIGNAL, p));
  }

  end(): void {
    if (this.letGo) return;
    this.letGo = true;
    this.socket.end(frame(F_END));
  }

  release(): void {
    this.letGo = true;
    this.socket.destroy();
  }

  sync(): Promise<boolean> {
    if (this.socket.destroyed || this.exitSeen) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (synced: boolean): void => {
        clearTimeout(timer);
        const at = this.syncs.indexOf(done);
        if (at >= 0) this.syncs.splice(at, 1);
        resolve(synced);
      };
      const timer = setTimeout(() => done(false), SYNC_TIMEOUT_MS);
      this.syncs.push(done);
      this.socket.write(frame(F_SYNC));
    });
  }


  private emitData(data: string, replayed = false): void {
    if (!data) return;
    if (this.dataListener) this.dataListener(data, replayed);
    else this.early.push({ data, replayed });
  }

  private tellExit(): void {
    if (!this.exitSeen || !this.exitListener || this.exitTold) return;
    this.exitTold = true;
    this.exitListener(this.exitSeen);
  }

  private receive(chunk: Buffer): void {
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    while (this.buffered.length >= 5) {
      const type = this.buffered.readUInt8(0);
      const len = this.buffered.readUInt32BE(1);
      if (len > FRAME_MAX) return this.broken(`a frame of ${len} bytes`);
      if (this.buffered.length < 5 + len) break;
      const payload = this.buffered.subarray(5, 5 + len);
      this.buffered = this.buffered.subarray(5 + len);
      if (!this.handle(type, payload)) return this.broken(`a bad frame (type ${type}, ${len} bytes)`);
    }
  }

  private handle(type: number, p: Buffer): boolean {
    switch (type) {
      case F_HELLO: {
        if (p.length < HELLO_BYTES || p.readUInt32BE(0) !== HOST_PROTOCOL) return false;
        const ended = p.readUInt8(28) === 1;
        this.hello = {
          hostPid: p.readUInt32BE(4),
          childPid: p.readUInt32BE(8),
          startedAt: Number(p.readBigUInt64BE(12)),
          totalOutput: Number(p.readBigUInt64BE(20)),
          exit: ended ? { exitCode: p.readUInt32BE(29), signal: p.readUInt32BE(33) } : null,
        };
        this.pid = this.hello.childPid;
        this.helloWaiter?.resolve(this.hello);
        this.helloWaiter = null;
        return true;
      }
      case F_JOURNAL: {
        if (p.length < 1) return false;
        let kept = p.subarray(1);
        // A journal that wrapped starts anywhere, even inside a character or an escape
        // sequence: start it at its first whole line.
        if (p.readUInt8(0) === 1) {
          const nl = kept.indexOf(0x0a);
          if (nl >= 0 && nl < 64 * 1024) kept = kept.subarray(nl + 1);
        }
        this.emitData(this.decoder.write(kept), true);
        return true;
      }
      case F_OUTPUT:
        this.emitData(this.decoder.write(p));
        return true;
      case F_SYNCED:
        if (p.length !== 0) return false;
        this.syncs.shift()?.(true);
        return true;
      case F_EXIT:
        if (p.length !== 8) return false;
        this.emitData(this.decoder.end());
        this.exitSeen = { exitCode: p.readUInt32BE(0), signal: p.readUInt32BE(4) };
        this.tellExit();
        return true;
      default:
        return false;
    }
  }

  private broken(what: string): void {
    this.socket.destroy(new Error(`the terminal host sent ${what}`));
  }

  /** The connection is gone. Not on purpose: the host died, and the terminal with it. */
  private lost(): void {
    for (const done of this.syncs.splice(0)) done(false);
    // Nothing listens (ECONNREFUSED: a socket file without its host; ENOENT: no file): gone.
    const gone = this.socketError === 'ECONNREFUSED' || this.socketError === 'ENOENT';
    this.helloWaiter?.reject(gone ? new HostGoneError('the terminal host is gone') : new Error(`the terminal host closed the connection${this.socketError ? ` (${this.socketError})` : ''}`));
    this.helloWaiter = null;
    if (this.letGo || this.exitSeen) return;
    this.emitData(this.decoder.end());
    this.exitSeen = { exitCode: 0, signal: constants.signals.SIGHUP };
    this.tellExit();
  }
}
