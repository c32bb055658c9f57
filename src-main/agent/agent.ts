/**
 * The agent: one per user per machine (per state directory). It owns the sessions and serves the
 * local API on its Unix socket, and in web mode over HTTP/WebSocket on 127.0.0.1. `vos daemon`
 * runs it; the Electron app starts one (or uses the running one) and is a client of it.
 *
 * This is the composition root of the core: it never imports `electron`.
 */
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { VosError } from '../api/errors.js';
import { PROTOCOL_VERSION, type AgentInfo, type AgentStopParams } from '../api/protocol.js';
import { packageVersion, rendererDir } from '../base/package-paths.js';
import { ensurePrivateDir, statePaths, type StatePaths } from '../base/state-dir.js';
import { acquireAgentLock, type AgentLock } from './agent-lock.js';
import { ApiDispatcher, type AgentServices } from './api-dispatcher.js';
import { Community, DEFAULT_PEER_PORT } from './community/community.js';
import { parseHostPort } from './community/addresses.js';
import { loadOrCreateIdentity, type Identity } from './community/identity.js';
import { MigrationReceiver } from './migration/receiver.js';
import { RelayHub } from './relay/relay-hub.js';
import { HeldJournal } from './migration/held-journal.js';
import { Migrator } from './migration/migrator.js';
import { ScheduleStore } from './schedule/schedule-store.js';
import { Scheduler } from './schedule/scheduler.js';
import { SessionManager } from './session-manager.js';
import { MirrorThread } from './session/mirror-thread.js';
import { LoopDelayMonitor } from './loop-delay.js';
import { probeHost, podSupportOf, type HostProbe } from './runtime/host-probe.js';
import { runtimeFiles } from './runtime/native.js';
import { checkpointBeforeShutdown, DEFAULT_SHUTDOWN_CHECKPOINT_MS, type ShutdownCheckpoints } from './shutdown-checkpoint.js';
import { UnixSocketServer } from './transports/unix-socket-server.js';
import { loadWebAddress, saveWebAddress } from './transports/web-address.js';
import { WebServer } from './transports/web-server.js';

export interface AgentOptions {
  home: string;
  name?: string;
  /** Start web mode on this port (0: any free port); null or absent: off until asked. */
  webPort?: number | null;
  /** Where the renderer bundle is (web mode). */
  staticDir?: string;
  log?: (message: string) => void;
  /**
   * Where to listen for links from peers. Absent: $VOS_LISTEN (HOST:PORT or "none"), else all
   * addresses on the default port (or any free port if another agent on this machine has it).
   * null: no listening, outgoing links only.
   */
  listen?: { host: string; port: number } | null;
  /** Publish and browse with mDNS (default: true unless $VOS_MDNS is "0"). */
  mdns?: boolean;
  /**
   * Called when a client asks the agent to stop (`agent.stop`), so that whoever hosts it stops
   * it and exits. Absent: the agent just stops.
   */
  onStopRequest?: () => void;
}

export class Agent implements AgentServices {
  readonly sessions: SessionManager;
  readonly scheduler: Scheduler;
  community: Community | null = null;
  migrations: { migrator: Migrator; receiver: MigrationReceiver } | null = null;
  private relays: RelayHub | null = null;
  private identity: Identity | null = null;
  readonly dispatcher: ApiDispatcher;
  readonly paths: StatePaths;
  private readonly name: string;
  private readonly staticDir: string;
  private readonly socketServer: UnixSocketServer;
  private web: WebServer | null = null;
  private webStarting: Promise<string> | null = null;
  private lock: AgentLock | null = null;
  private stopping: Promise<void> | null = null;
  /** What the probe at start found (null: no runtime built). */
  private host: HostProbe | null = null;
  readonly log: (message: string) => void;
  /** The event loop's delay, when VOS_LOOP_DELAY=1 asked for it. */
  readonly loopDelay: LoopDelayMonitor | null;

  private constructor(private readonly options: AgentOptions) {
    this.paths = statePaths(options.home);
    this.name = options.name ?? hostname();
    this.staticDir = options.staticDir ?? rendererDir();
    this.log = options.log ?? (() => {});
    MirrorThread.shared().log = this.log;
    this.loopDelay = LoopDelayMonitor.fromEnv(process.env);
    this.sessions = new SessionManager({
      cwd: process.env.HOME ?? '/',
      env: stringEnv(process.env),
      stateDir: this.paths.home,
      agentName: this.name,
    });
    this.scheduler = new Scheduler(this.sessions, new ScheduleStore(this.paths.home), this.log);
    this.dispatcher = new ApiDispatcher(this);
    this.socketServer = new UnixSocketServer(this.dispatcher);
  }

  /** Takes the state directory, listens on its socket (and the web port if asked). */
  static async start(options: AgentOptions): Promise<Agent> {
    const agent = new Agent(options);
    ensurePrivateDir(agent.paths.home);
    agent.lock = acquireAgentLock(agent.paths.lock, agent.paths.home);
    try {
      await agent.probeHost();
      // Sessions an earlier agent left running are there before anyone can ask for them.
      await agent.sessions.adopt(agent.log);
      // Adopted sessions keep their schedules; runs overdue meanwhile happen soon, once.
      agent.scheduler.start();
      await agent.socketServer.listen(agent.paths.socket);
      await agent.startCommunity();
      if (options.webPort !== undefined && options.webPort !== null) await agent.enableWeb(options.webPort);
    } catch (err) {
      await agent.stop();
      throw err;
    }
    agent.log(`agent "${agent.name}" (pid ${process.pid}) listening on ${agent.paths.socket}`);
    return agent;
  }

  /**
   * Whether this machine lets sessions have pods (a real try, host-probe.ts): when not, sessions
   * start without one and the reason, with its fix, is in agent.info and each such session.
   */
  private async probeHost(): Promise<void> {
    const runtime = runtimeFiles();
    this.host = runtime ? await probeHost(runtime.init) : null;
    const pods = podSupportOf(this.host);
    if (runtime && !pods.ok) {
      this.sessions.setNoPods(`${pods.reason}. Fix: ${pods.fix}`);
      this.log(`sessions start without a pod (they cannot be checkpointed or moved): ${pods.reason}. Fix: ${pods.fix}`);
    }
  }

  /** Identity, peer listener and discovery. */
  private async startCommunity(): Promise<void> {
    this.identity = loadOrCreateIdentity(this.paths.home);
    const explicit = this.options.listen !== undefined ? this.options.listen : listenFromEnv(process.env.VOS_LISTEN);
    const mdns = this.options.mdns ?? process.env.VOS_MDNS !== '0';
    const relays = new RelayHub(this.paths.home, () => this.community!, this.log);
    this.relays = relays;
    const receiver = new MigrationReceiver(this.sessions, this.log, undefined, new HeldJournal(this.paths.home), relays);
    receiver.recover(); // the sessions were adopted first: held copies an earlier agent had are held again
    const make = (listen: { host: string; port: number } | null): Community =>
      new Community(
        {
          identity: this.identity!,
          name: this.name,
          home: this.paths.home,
          listen,
          mdns,
          log: this.log,
          onStream: (peer, stream) => {
            if (!relays.stream(peer, stream)) receiver.stream(peer, stream);
          },
        },
        (peer) => ({ open: (conn, shared) => this.dispatcher.open(conn, { kind: 'peer', peer }, shared) }),
      );
    let community = make(explicit === undefined ? { host: '0.0.0.0', port: DEFAULT_PEER_PORT } : explicit);
    try {
      await community.start();
    } catch (err) {
      await community.stop();
      const code = (err as NodeJS.ErrnoException).code;
      if (explicit !== undefined || code !== 'EADDRINUSE') {
        const where = explicit ? `${explicit.host}:${explicit.port}` : `port ${DEFAULT_PEER_PORT}`;
        throw new VosError('unavailable', `cannot listen for peers on ${where}: ${(err as Error).message}`);
      }
      // Another agent on this machine (another user) has the default port: take any.
      community = make({ host: '0.0.0.0', port: 0 });
      await community.start();
    }
    this.community = community;
    this.migrations = { migrator: new Migrator(this.sessions, community, this.name, this.paths.home, this.log, relays), receiver };
    this.migrations.migrator.recover();
    this.log(
      `machine id ${this.identity.shortId}; ${community.listening ? `listening for peers on ${community.listening}` : 'not listening for peers'}` +
        `${community.mdnsEnabled ? ', mDNS on' : ', mDNS off'}`,
    );
  }

  info(): AgentInfo {
    return {
      name: this.name,
      hostname: hostname(),
      pid: process.pid,
      version: packageVersion(),
      protocol: PROTOCOL_VERSION,
      home: this.paths.home,
      webUrl: this.web?.url ?? null,
      id: this.identity?.id ?? '',
      shortId: this.identity?.shortId ?? '',
      listen: this.community?.listening ?? null,
      mdns: this.community?.mdnsEnabled ?? false,
      pods: podSupportOf(this.host),
    };
  }

  /**
   * Turns the web UI on. `port` absent or 0: the port it had before in this state directory
   * (web.json), so that open pages find this agent again; when another program took that port,
   * any free one (those pages then say they lost the agent). The token stays the same across
   * restarts either way.
   */
  enableWeb(port = 0): Promise<string> {
    if (this.web) return Promise.resolve(this.web.url);
    this.webStarting ??= (async () => {
      if (!existsSync(join(this.staticDir, 'index.html'))) {
        throw new VosError('unavailable', `the web UI is not built (${this.staticDir} has no index.html): run 'npm run build'`);
      }
      const kept = loadWebAddress(this.paths.home);
      const open = async (at: number): Promise<WebServer> => {
        const web = new WebServer(this.dispatcher, this.staticDir, kept.token);
        await web.listen(at);
        return web;
      };
      let web: WebServer;
      const wanted = port !== 0 ? port : kept.port;
      try {
        web = await open(wanted);
      } catch (err) {
        if (port !== 0 || wanted === 0 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') {
          throw new VosError('unavailable', `cannot serve the web UI on 127.0.0.1:${wanted}: ${(err as Error).message}`);
        }
        this.log(`the web UI's port ${wanted} is taken by another program: using another one (open pages must be opened again)`);
        web = await open(0);
      }
      saveWebAddress(this.paths.home, { port: web.listeningPort, token: kept.token });
      this.web = web;
      this.log(`web UI at ${web.url}`);
      return web.url;
    })().finally(() => {
      this.webStarting = null;
    });
    return this.webStarting;
  }

  /**
   * What `agent.stop` does before the agent stops: with `checkpointFirst`, a before-shutdown
   * image of every running session, all within `timeoutMs`; with `endSessions`, every session
   * ended (those checkpointed stay recoverable for the next agent).
   */
  async prepareStop(params: AgentStopParams): Promise<ShutdownCheckpoints> {
    let done: ShutdownCheckpoints = { checkpointed: [], failed: [] };
    if (params.checkpointFirst) {
      done = await checkpointBeforeShutdown(this.sessions.liveSessions(), this.sessions.images, {
        agentName: this.name,
        timeoutMs: params.timeoutMs ?? DEFAULT_SHUTDOWN_CHECKPOINT_MS,
        log: this.log,
      });
    }
    if (params.endSessions) {
      this.log('ending every session before stopping');
      await this.sessions.disposeAll(2000, new Set(done.checkpointed));
    }
    return done;
  }

  requestStop(): void {
    // After the reply has gone out.
    setImmediate(() => {
      if (this.options.onStopRequest) this.options.onStopRequest();
      else void this.stop();
    });
  }

  /**
   * Closes the servers and releases the state directory; sessions keep running under their
   * terminal hosts for the next agent (only those without the runtime end). Idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await this.scheduler.stop();
      // The connections kept and relayed for moved sessions end (the other side hears so while
      // the links are still there), as a network failure would for the programs.
      await this.relays?.stop();
      await this.community?.stop();
      await this.sessions.letGoAll();
      await this.web?.close();
      await this.socketServer.close();
      this.lock?.release();
      this.log('agent stopped');
    })();
    return this.stopping;
  }
}

/** VOS_LISTEN: HOST:PORT, or "none" for no listening; unset: the default. */
function listenFromEnv(value: string | undefined): { host: string; port: number } | null | undefined {
  if (value === undefined || value === '') return undefined;
  if (value === 'none') return null;
  return parseHostPort(value, DEFAULT_PEER_PORT, true);
}

function stringEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  return out;
}
