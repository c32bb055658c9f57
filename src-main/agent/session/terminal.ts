/**
 * What a session's program runs on, as the session sees it: a terminal host (terminal-host.ts,
 * the program outlives the agent) or, where the native runtime is not built, a pty held by the
 * agent itself through node-pty (the program ends with the agent).
 */
import pty from '@lydell/node-pty';
import { drainOutputAfterExit } from './pty-exit-drain.js';

export interface TerminalExit {
  exitCode: number;
  /** The signal that ended the program, or 0. */
  signal: number;
}

export interface SessionTerminal {
  /** The process on the pty (vos-init, or the program itself). */
  readonly pid: number;
  /** True when the program goes on after the agent lets go of it (`release`). */
  readonly outlivesAgent: boolean;
  /** `replayed`: output kept from before this agent connected (a terminal host's journal). */
  onData(listener: (data: string, replayed?: boolean) => void): void;
  /** Once, after the last output. */
  onExit(listener: (exit: TerminalExit) => void): void;
  write(data: string): void;
  resize(cols: number, rows: number): void;
  /** Flow control: stop and resume taking output (the program blocks in write meanwhile). */
  pause(): void;
  resume(): void;
  /** Sends a signal to the process on the pty (not to a process that has been reaped). */
  signal(signal: NodeJS.Signals): void;
  /** The agent is done with the session (it was removed): the terminal goes away. */
  end(): void;
  /** The agent lets go and leaves the program running (only when `outlivesAgent`). */
  release(): void;
  /**
   * Resolves once the output the pty holds now has been handed to `onData` listeners: true when
   * that is known to be all of it (a terminal host read the master to EAGAIN, and a read that
   * finds nothing first runs the kernel's pending pty work, so nothing the program wrote before
   * now is still in flight); false when it cannot tell (then wait for quiet).
   */
  sync(): Promise<boolean>;
}

export interface TerminalLaunch {
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  cols: number;
  rows: number;
}

/** A pty held by the agent (node-pty): the program ends when the agent does. */
export function spawnAgentPty(launch: TerminalLaunch): SessionTerminal {
  const p = pty.spawn(launch.file, launch.args, {
    name: 'xterm-256color',
    cols: launch.cols,
    rows: launch.rows,
    cwd: launch.cwd,
    env: launch.env,
    encoding: 'utf8',
  });
  const dataListeners: ((data: string) => void)[] = [];
  const deliver = (data: string): void => {
    for (const l of dataListeners) l(data);
  };
  drainOutputAfterExit(p, deliver);
  p.onData(deliver);
  return {
    pid: p.pid,
    outlivesAgent: false,
    onData: (listener) => void dataListeners.push(listener),
    onExit: (listener) => void p.onExit(({ exitCode, signal }) => listener({ exitCode, signal: signal ?? 0 })),
    write: (data) => p.write(data),
    resize: (cols, rows) => p.resize(cols, rows),
    pause: () => p.pause(),
    resume: () => p.resume(),
    signal(signal) {
      try {
        process.kill(p.pid, signal);
      } catch (err) {
        // ESRCH: it exited a moment ago; the exit event is on its way.
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
      }
    },
    end: () => undefined,
    release: () => undefined,
    // node-pty reads the master itself; what it holds arrives on its own (see Session.screenCut).
    sync: () => Promise.resolve(false),
  };
}
