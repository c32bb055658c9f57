/**
 * Keeps an agent running for the app, as VS Code keeps its pty host: the agent is its own
 * process (an agent already running for the state directory, or a `vos daemon` started here,
 * detached), and the app is one of its clients over the Unix socket. When the agent goes away
 * (killed, crashed, stopped by someone), the supervisor finds or starts another, with a back-off,
 * at most `maxRestarts` times in `windowMs`; then it gives up and says why until `retry()`.
 * Sessions do not depend on it: they live under their terminal hosts, and the next agent adopts
 * them.
 *
 * No Electron here: the shell (src-main/shell/main.ts) only wires it to the window and the tray.
 */
import type { ApiClient, MessageTransport } from '../api/client.js';
import { VosError } from '../api/errors.js';
import type { AgentInfo } from '../api/protocol.js';
import type { StatePaths } from '../base/state-dir.js';
import { spawnBackgroundAgent, waitForAgent, type AgentLaunch, type StartedAgent } from './background-agent.js';
import { endAllSessions, type EndSessionsResult } from './end-sessions.js';
import { connectToAgent, openSocketTransport } from './socket-transport.js';

export interface RestartPolicy {
  /** At most this many restarts within `windowMs`; one more and the supervisor gives up. */
  maxRestarts: number;
  windowMs: number;
  /** The wait before the first restart in a window; doubled for each further one. */
  firstDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = { maxRestarts: 5, windowMs: 60_000, firstDelayMs: 250, maxDelayMs: 8_000 };

export type SupervisorState =
  | { kind: 'starting' }
  /** `startedHere`: this supervisor started it (else it was running already). */
  | { kind: 'running'; agent: AgentInfo; startedHere: boolean }
  /** The agent went away (`reason`); the next attempt is number `attempt` in this window. */
  | { kind: 'restarting'; reason: string; attempt: number; delayMs: number }
  /** Gave up: too many restarts in the window, or the agent cannot start. `retry()` starts over. */
  | { kind: 'failed'; reason: string }
  /** `stop()` was called: the agent is left as it is. */
  | { kind: 'stopped' };

export interface SupervisorOptions {
  paths: StatePaths;
  /** The name this supervisor's own connection gives in its hello. */
  clientName: string;
  launch?: AgentLaunch;
  policy?: Partial<RestartPolicy>;
  log?: (message: string) => void;
}

export class AgentSupervisor {
  private current: SupervisorState = { kind: 'starting' };
  private readonly listeners = new Set<(state: SupervisorState) => void>();
  private readonly policy: RestartPolicy;
  private readonly log: (message: string) => void;
  /** The supervisor's own connection: when it closes, the agent has gone. */
  private watch: ApiClient | null = null;
  private started: StartedAgent | null = null;
  /** When the restarts of the current window happened. */
  private restarts: number[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private generation = 0;

  constructor(private readonly options: SupervisorOptions) {
    this.policy = { ...DEFAULT_RESTART_POLICY, ...options.policy };
    this.log = options.log ?? (() => undefined);
  }

  get state(): SupervisorState {
    return this.current;
  }

  /** The supervisor's connection to the running agent (null while there is none). */
  get client(): ApiClient | null {
    return this.current.kind === 'running' ? this.watch : null;
  }

  /** Called with every new state; returns a function that unsubscribes. */
  onChange(listener: (state: SupervisorState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Finds or starts the agent; resolves once it runs, rejects if it cannot be had. */
  async start(): Promise<AgentInfo> {
    this.restarts = [];
    await this.attempt(this.generation);
    return this.whenRunning();
  }

  /** Gives up on giving up: starts over with a fresh restart window. */
  retry(): void {
    if (this.current.kind !== 'failed') return;
    this.restarts = [];
    void this.attempt(this.generation);
  }

  /**
   * Resolves with the agent once one runs (now, or after a restart under way); rejects when the
   * supervisor has given up or stopped, or after `timeoutMs`.
   */
  whenRunning(timeoutMs = 30_000): Promise<AgentInfo> {
    const settled = (s: SupervisorState): AgentInfo | VosError | null => {
      if (s.kind === 'running') return s.agent;
      if (s.kind === 'failed') return new VosError('no_agent', s.reason);
      if (s.kind === 'stopped') return new VosError('no_agent', 'the app no longer runs an agent (it is quitting)');
      return null;
    };
    const now = settled(this.current);
    if (now instanceof VosError) return Promise.reject(now);
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new VosError('timeout', `no agent within ${timeoutMs / 1000} s; see ${this.options.paths.log}`));
      }, timeoutMs);
      const off = this.onChange((s) => {
        const r = settled(s);
        if (!r) return;
        clearTimeout(timer);
        off();
        if (r instanceof VosError) reject(r);
        else resolve(r);
      });
    });
  }

  /**
   * A connection of its own to the agent for a client of the app (a window), once an agent runs.
   * It closes when the agent goes away; the window then asks for a new one.
   */
  async openTransport(timeoutMs?: number): Promise<MessageTransport> {
    await this.whenRunning(timeoutMs);
    return openSocketTransport(this.options.paths.socket);
  }

  /**
   * The tray's "Quit and end all sessions": stops supervising, ends every session of the agent,
   * stops the agent and waits (at most `timeoutMs`) until its process is gone. With
   * `checkpointFirst`, the agent writes a before-shutdown image of each session first and ends
   * them itself (`agent.stop`), so the next agent lists them as recoverable (`vos recover --all`);
   * without, each is hung up and removed (end-sessions.ts).
   * Without a running agent nothing can be ended: that is an error, and supervision has stopped.
   */
  async endSessionsAndStopAgent(timeoutMs = 20_000, checkpointFirst = false): Promise<EndSessionsResult> {
    const client = this.client;
    const pid = this.current.kind === 'running' ? this.current.agent.pid : 0;
    this.watch = null; // its close is expected now, not a reason to restart
    this.stop();
    if (!client) throw new VosError('no_agent', 'no agent runs, so no session could be ended; they go on under their terminal hosts');
    try {
      let result: EndSessionsResult;
      if (checkpointFirst) {
        const stopped = await client.request('agent.stop', { checkpointFirst: true, endSessions: true, timeoutMs: Math.max(1000, timeoutMs - 5000) });
        result = { ended: stopped.checkpointed, failed: stopped.failed };
      } else {
        result = await endAllSessions(client);
        await client.request('agent.stop', {});
      }
      const deadline = Date.now() + timeoutMs;
      while (pid && processAlive(pid)) {
        if (Date.now() > deadline) throw new VosError('timeout', `the agent (pid ${pid}) did not stop within ${timeoutMs / 1000} s`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return result;
    } finally {
      client.close();
    }
  }

  /** Stops supervising and closes its connection; the agent and its sessions go on. */
  stop(): void {
    this.generation++;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const watch = this.watch;
    this.watch = null;
    watch?.close();
    this.set({ kind: 'stopped' });
  }

  private set(state: SupervisorState): void {
    this.current = state;
    for (const l of [...this.listeners]) l(state);
  }

  /** One try to have an agent: connect to a running one, else start one and connect. */
  private async attempt(generation: number): Promise<void> {
    if (generation !== this.generation) return;
    if (this.restarts.length === 0) this.set({ kind: 'starting' }); // (a restart stays "restarting" until it runs)
    let client: ApiClient;
    let startedHere = false;
    try {
      try {
        client = await connectToAgent(this.options.paths.socket, this.options.clientName);
      } catch (err) {
        if (!(err instanceof VosError) || err.code !== 'no_agent') throw err;
        this.started = spawnBackgroundAgent(this.options.paths, this.options.launch);
        startedHere = true;
        this.log(`started the agent (pid ${this.started.pid})`);
        client = await waitForAgent(this.options.paths, this.options.clientName, this.started);
      }
    } catch (err) {
      if (generation !== this.generation) return;
      this.wentAway(err instanceof VosError ? err.message : String(err), generation);
      return;
    }
    if (generation !== this.generation) {
      client.close();
      return;
    }
    let agent: AgentInfo;
    try {
      agent = await client.ready();
    } catch (err) {
      this.wentAway((err as Error).message, generation);
      return;
    }
    this.watch = client;
    const started = startedHere ? this.started : null;
    client.onClose(() => {
      if (generation !== this.generation || this.watch !== client) return;
      this.watch = null;
      let reported = false;
      const report = (): void => {
        if (reported || generation !== this.generation) return;
        reported = true;
        const how = started?.exited();
        this.wentAway(how ? `the agent (pid ${agent.pid}) ended: ${how}` : `the connection to the agent (pid ${agent.pid}) closed`, generation);
      };
      // The exit of an agent started here says more than a closed socket: wait a moment for it.
      if (!started || started.exited()) return report();
      const timer = setTimeout(report, 500);
      started.onExit(() => {
        clearTimeout(timer);
        report();
      });
    });
    this.log(`${startedHere ? 'running' : 'using'} the agent "${agent.name}" (pid ${agent.pid})`);
    this.set({ kind: 'running', agent, startedHere });
  }

  private wentAway(reason: string, generation: number): void {
    const now = Date.now();
    this.restarts = this.restarts.filter((t) => now - t < this.policy.windowMs);
    if (this.restarts.length >= this.policy.maxRestarts) {
      const why =
        `the agent stopped ${this.restarts.length + 1} times within ${Math.round(this.policy.windowMs / 1000)} s ` +
        `and is not restarted again (last: ${reason}); see ${this.options.paths.log}`;
      this.log(why);
      this.set({ kind: 'failed', reason: why });
      return;
    }
    const delayMs = Math.min(this.policy.firstDelayMs * 2 ** this.restarts.length, this.policy.maxDelayMs);
    this.restarts.push(now);
    this.log(`${reason}; restarting it in ${delayMs} ms (attempt ${this.restarts.length} of ${this.policy.maxRestarts})`);
    this.set({ kind: 'restarting', reason, attempt: this.restarts.length, delayMs });
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.attempt(generation);
    }, delayMs);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
