/**
 * Serves the local API to one connection at a time, whatever the transport: checks each message,
 * runs the method, sends exactly one reply per request, and routes events. A bad request fails
 * that request; a bad message (not a hello or a request) ends that connection only.
 */
import { adoptablePrograms } from './runtime/adoptable.js';
import { VosError, describeError } from '../api/errors.js';
import {
  DEFAULT_SEND_FILES_UP_TO,
  PROTOCOL_VERSION,
  type AgentInfo,
  type LoopDelay,
  type AgentStopParams,
  type Method,
  type ParamsOf,
  type ResultOf,
  type SessionInfo,
} from '../api/protocol.js';
import { ONLY_TO_ITSELF, PEER_RIGHTS, type PeerRight } from '../api/peer-rights.js';
import { checkParams, parseClientMessage } from '../api/validate.js';
import { parseSignal } from '../base/signals.js';
import type { Community } from './community/community.js';
import { RemoteProxy, isRemoteSessionMethod, splitRemoteRef } from './community/remote-proxy.js';
import type { MigrationReceiver } from './migration/receiver.js';
import type { Migrator } from './migration/migrator.js';
import type { Scheduler } from './schedule/scheduler.js';
import type { SessionManager } from './session-manager.js';
import { compileScreenPattern } from './session/screen-pattern.js';
import type { Connection } from './transports/connection.js';
import { InFlight, MAX_IN_FLIGHT } from './in-flight.js';

/** What the dispatcher needs from the agent around it. */
export interface AgentServices {
  readonly sessions: SessionManager;
  /** Scheduled checkpoints of this agent's sessions. */
  readonly scheduler: Scheduler;
  /** The machine community; null when the agent runs without it. */
  readonly community: Community | null;
  readonly migrations: { migrator: Migrator; receiver: MigrationReceiver } | null;
  info(): AgentInfo;
  /** The event loop's delay, when the agent measures it (loop-delay.ts). */
  readonly loopDelay?: { read(reset: boolean): LoopDelay } | null;
  enableWeb(port?: number): Promise<string>;
  /**
   * Before a stop: checkpoints the running sessions first and/or ends them, as `agent.stop`
   * asks (see AgentStopParams); says which were checkpointed and which failed.
   */
  prepareStop(params: AgentStopParams): Promise<{ checkpointed: string[]; failed: { id: string; reason: string }[] }>;
  /** Stops the agent soon (after the reply has gone out); see `agent.stop`. */
  requestStop(): void;
  log(message: string): void;
}

/**
 * Who is on the other end. A local client (same user: Unix socket, token-guarded web socket,
 * Electron) may do everything. A paired peer may do what PEER_RIGHTS (api/peer-rights.ts) gives
 * it: list, watch and use this agent's sessions, move one to itself, but not start, remove,
 * checkpoint or restore them, not change this agent's settings, and not reach through this agent
 * to a third machine.
 */
export type ConnectionPolicy = { kind: 'local' } | { kind: 'peer'; peer: { id: string; name: string } };

/** The methods a paired peer may call at all (some only narrowed: see PEER_RIGHTS). */
export const PEER_METHODS: ReadonlySet<Method> = new Set<Method>(
  (Object.keys(PEER_RIGHTS) as Method[]).filter((m) => PEER_RIGHTS[m] !== 'local'),
);

/** What only another agent asks (the target side of a migration). */
const AGENT_TO_AGENT: ReadonlySet<Method> = new Set<Method>(['migration.offer', 'migration.files', 'migration.result', 'migration.go', 'migration.abort']);

interface RequestContext {
  conn: Connection;
  client: ClientState;
  /** Runs `fn` right after the reply to this request has been sent. */
  afterReply(fn: () => void): void;
}

type Handler<M extends Method> = (params: ParamsOf<M>, ctx: RequestContext) => Promise<ResultOf<M>> | ResultOf<M>;
type Handlers = { [M in Method]: Handler<M> };

class ClientState {
  greeted = false;
  closed = false;
  unwatch: (() => void) | null = null;
  unwatchPeers: (() => void) | null = null;
  /** Sessions this connection views, by id. */
  readonly attached = new Set<string>();
  /** Its conversations with paired peers, made on first use. */
  remote: RemoteProxy | null = null;
  /** Its own requests in flight, and those of all conversations on the same link (peers). */
  readonly inFlight = new InFlight(MAX_IN_FLIGHT);
  constructor(
    readonly policy: ConnectionPolicy,
    readonly shared: InFlight | null,
  ) {}
}

/** What a transport holds per connection: feed it messages, tell it when the connection ends. */
export interface ConnectionHandle {
  receive(message: unknown): void;
  /** The transport hit a framing error: reply with it and close. */
  fatal(error: VosError): void;
  closed(): void;
}

export { MAX_IN_FLIGHT } from './in-flight.js';

export class ApiDispatcher {
  private readonly handlers: Handlers;

  constructor(private readonly agent: AgentServices) {
    this.handlers = this.makeHandlers();
  }

  /** `shared`: a limit of requests in flight that this connection shares with others (a peer's link). */
  open(conn: Connection, policy: ConnectionPolicy = { kind: 'local' }, shared: InFlight | null = null): ConnectionHandle {
    const client = new ClientState(policy, shared);
    return {
      receive: (message) => this.receive(conn, client, message),
      fatal: (error) => this.fatal(conn, client, error),
      closed: () => this.cleanup(conn, client),
    };
  }

  private receive(conn: Connection, client: ClientState, raw: unknown): void {
    if (client.closed) return;
    let message;
    try {
      message = parseClientMessage(raw);
    } catch (err) {
      this.fatal(conn, client, err instanceof VosError ? err : new VosError('bad_frame', describeError(err)));
      return;
    }
    if (message.t === 'hello') {
      if (message.protocol !== PROTOCOL_VERSION) {
        this.fatal(
          conn,
          client,
          new VosError(
            'unsupported_protocol',
            `this agent speaks protocol ${PROTOCOL_VERSION}, the client ${message.protocol}: update vOS on one side`,
          ),
        );
        return;
      }
      client.greeted = true;
      conn.send({ t: 'hello', protocol: PROTOCOL_VERSION, agent: this.info(client) });
      return;
    }
    const { id, method, params } = message;
    if (!client.greeted) {
      conn.send({ t: 'res', id, ok: false, error: { code: 'not_ready', message: 'send hello before any request' } });
      return;
    }
    // Input is not counted: its cost is bounded by its frame, and a paste to a peer's session
    // on a slow link has many chunks waiting for answers at once (none may be lost).
    const counted = method !== 'session.input';
    const full = counted ? [client.inFlight, client.shared].find((l) => l?.full) : undefined;
    if (full) {
      const where = full === client.inFlight ? 'this connection' : "this machine's link";
      conn.send({ t: 'res', id, ok: false, error: { code: 'busy', message: `${full.limit} requests are in flight on ${where}: wait for their answers` } });
      return;
    }
    void this.run(conn, client, id, method, params, counted);
  }

  private async run(conn: Connection, client: ClientState, id: number, method: Method, params: unknown, counted: boolean): Promise<void> {
    const after: Array<() => void> = [];
    const limits = counted ? [client.inFlight, client.shared].filter((l): l is InFlight => l !== null) : [];
    for (const l of limits) l.count++;
    try {
      const checked = checkParams(method, params);
      const result = await this.call(method, checked, { conn, client, afterReply: (fn) => after.push(fn) });
      if (client.closed) return;
      conn.send({ t: 'res', id, ok: true, result });
      for (const fn of after) fn();
    } catch (err) {
      if (client.closed) return;
      const error =
        err instanceof VosError ? err : new VosError('internal', `internal error in ${method}: ${describeError(err)}`);
      if (error.code === 'internal') this.agent.log(`${conn.label}: ${error.message}`);
      conn.send({ t: 'res', id, ok: false, error: error.toPayload() });
    } finally {
      for (const l of limits) l.count--;
    }
  }

  /** Runs a checked request: within the connection's rights, here or on the peer it names. */
  private call(method: Method, params: ParamsOf<Method>, ctx: RequestContext): Promise<unknown> | unknown {
    const { client, conn } = ctx;
    const ref = typeof (params as { id?: unknown }).id === 'string' ? splitRemoteRef((params as { id: string }).id) : null;
    if (client.policy.kind === 'peer') {
      this.checkPeerRight(method, params, client.policy.peer);
      if (ref) throw new VosError('unknown_session', 'sessions of other machines cannot be reached through this one');
    } else if (AGENT_TO_AGENT.has(method)) {
      throw new VosError('refused', `${method} is for another machine's agent, not for a local client`);
    } else if (ref && isRemoteSessionMethod(method)) {
      return this.remote(client, conn).forward(method, params as ParamsOf<typeof method>, ref);
    } else if (ref && method === 'session.migrate') {
      return this.remote(client, conn).migrate(params as ParamsOf<'session.migrate'>, ref);
    } else if (ref && method.startsWith('session.')) {
      // A paired machine may not do this to its sessions (PEER_RIGHTS: local): its own user can.
      const verb = method.slice('session.'.length);
      throw new VosError(
        'refused',
        `${ref.session}@${ref.peer} is a session of ${ref.peer}: a ${verb} is done there, by that machine's user (vos ${verb === 'remove' ? 'rm' : verb} ${ref.session} on ${ref.peer}); from here you may move it home (vos migrate ${ref.session}@${ref.peer} ${this.agent.info().name})`,
      );
    }
    const handler = this.handlers[method] as Handler<Method>;
    return handler(params, ctx);
  }

  /** A peer's request within its rights (PEER_RIGHTS), or refused saying why. */
  private checkPeerRight(method: Method, params: ParamsOf<Method>, peer: { id: string; name: string }): void {
    const right: PeerRight = PEER_RIGHTS[method];
    if (right === 'local') throw new VosError('refused', `a paired machine may not call ${method} here`);
    if (right === 'peer') return;
    // { peer: 'only to itself' }: the machine the request names must be the one asking.
    const named = (params as { peer?: unknown }).peer;
    let target: string | null = null;
    try {
      target = typeof named === 'string' ? this.peers().resolve(named).id : null;
    } catch {
      /* a machine this one does not know: not the one asking either */
    }
    if (target !== peer.id) throw new VosError('refused', ONLY_TO_ITSELF);
  }

  /** With `all`, a local client's list takes in the paired machines' sessions; a peer's never does. */
  private async othersSessions(all: boolean | undefined, client: ClientState, conn: Connection, watch: boolean): Promise<SessionInfo[]> {
    if (!all || client.policy.kind !== 'local' || !this.agent.community) return [];
    return this.remote(client, conn).listAll(watch);
  }

  private remote(client: ClientState, conn: Connection): RemoteProxy {
    const community = this.agent.community;
    if (!community) throw new VosError('unavailable', 'this agent runs without the machine community');
    client.remote ??= new RemoteProxy(conn, community);
    return client.remote;
  }

  private fatal(conn: Connection, client: ClientState, error: VosError): void {
    if (client.closed) return;
    this.agent.log(`${conn.label}: closing: ${error.message}`);
    conn.send({ t: 'error', error: error.toPayload() });
    this.cleanup(conn, client);
    conn.close();
  }

  private cleanup(conn: Connection, client: ClientState): void {
    if (client.closed) return;
    client.closed = true;
    client.unwatch?.();
    client.unwatchPeers?.();
    client.remote?.close();
    for (const id of client.attached) {
      try {
        this.agent.sessions.resolve(id).detach(conn);
      } catch {
        /* the session is gone already */
      }
    }
    client.attached.clear();
  }

  private migrations(): { migrator: Migrator; receiver: MigrationReceiver } {
    if (!this.agent.migrations) throw new VosError('unavailable', 'this agent runs without the machine community');
    return this.agent.migrations;
  }

  /**
   * What this agent says about itself to the connection: a paired machine learns who and what
   * it is, but not the web UI's address (its token gives full local rights), its state
   * directory or its pid.
   */
  private info(client: ClientState, resetLoopDelay = false): AgentInfo {
    const info = this.agent.info();
    if (client.policy.kind !== 'local') return { ...info, pid: 0, home: '', webUrl: null };
    const loopDelay = this.agent.loopDelay?.read(resetLoopDelay);
    return loopDelay ? { ...info, loopDelay } : info;
  }

  private peerOf(client: ClientState): { id: string; name: string } {
    if (client.policy.kind !== 'peer') throw new VosError('refused', 'only another machine\'s agent may ask this');
    return client.policy.peer;
  }

  private peers(): Community {
    const community = this.agent.community;
    if (!community) throw new VosError('unavailable', 'this agent runs without the machine community');
    return community;
  }

  private makeHandlers(): Handlers {
    const sessions = this.agent.sessions;
    return {
      'agent.info': (p, { client }) => this.info(client, p.resetLoopDelay === true),
      'agent.web': async (p) => ({ url: await this.agent.enableWeb(p.port) }),
      'agent.stop': async (p) => {
        const done = await this.agent.prepareStop(p);
        this.agent.requestStop();
        return { stopping: true as const, ...done };
      },
      'session.list': async (p, { conn, client }) => [...sessions.list(), ...(await this.othersSessions(p.all, client, conn, false))],
      'session.watch': async (p, { conn, client }) => {
        if (!client.unwatch) {
          const unwatchSessions = sessions.onEvent((e) => conn.send({ t: 'event', ...e }));
          // Schedules are this user's business: a paired machine's watch does not get them.
          const unwatchSchedules = client.policy.kind === 'local' ? this.agent.scheduler.onEvent((e) => conn.send({ t: 'event', ...e })) : null;
          client.unwatch = () => {
            unwatchSessions();
            unwatchSchedules?.();
          };
        }
        return [...sessions.list(), ...(await this.othersSessions(p.all, client, conn, true))];
      },
      'session.create': (p) => sessions.create(p).info(),
      'session.kill': (p) => {
        const s = sessions.resolve(p.id);
        s.kill(parseSignal(p.signal ?? 'HUP'));
        return s.info();
      },
      'session.remove': async (p) => ({ id: await sessions.remove(p.id, p.force ?? false) }),
      'session.resize': (p, { conn }) => {
        const s = sessions.resolve(p.id);
        s.resize(p.cols, p.rows, s.hasViewer(conn) ? conn : undefined);
        return s.info();
      },
      'session.input': (p, { conn }) => {
        const s = sessions.resolve(p.id);
        s.input(p.data, s.hasViewer(conn) ? conn : undefined);
        return {};
      },
      'session.screen': (p) => sessions.resolve(p.id).screen(),
      'session.wait': (p) => {
        // Compiled before anything else: an unsupported pattern is refused at once.
        const pattern = compileScreenPattern(p.pattern, p.flags);
        return sessions.resolve(p.id).waitFor(pattern, p.timeoutMs);
      },
      'session.attach': async (p, { conn, client, afterReply }) => {
        const s = sessions.resolve(p.id);
        const size = p.cols !== undefined && p.rows !== undefined ? { cols: p.cols, rows: p.rows } : null;
        // A client that leaves before its snapshot is taken costs no snapshot.
        const { result, release } = await s.attach(conn, size, () => !client.closed, p.take === true);
        if (client.closed) {
          // The client left while its snapshot was taken; don't keep holding output for it.
          s.detach(conn);
          throw new VosError('connection_closed', 'the client disconnected');
        }
        client.attached.add(s.id);
        afterReply(release);
        return result;
      },
      'session.checkpoint': (p, { conn }) =>
        sessions.checkpoint(p.id, p.out, p.stop ?? false, p.keep, p.incremental ?? false, (warning) =>
          conn.send({ t: 'event', event: 'checkpoint.warning', id: p.id, warning }),
        ),
      'session.recover': async (p) =>
        (await sessions.recover(p.all ? { all: true } : { ref: p.id!, ...(p.takeAsIs ? { takeAsIs: p.takeAsIs } : {}) })).map((s) => s.info()),
      'session.restore': async (p) =>
        (await sessions.restore(p.image !== undefined ? { image: p.image } : { file: p.file! }, p.name, p.takeAsIs ? { takeAsIs: p.takeAsIs } : {})).info(),
      'session.adopt': async (p) => (await sessions.adoptProgram(p.pid, p.name)).info(),
      'session.adoptable': () => adoptablePrograms(),
      'image.list': (p) => sessions.images.list(p.session),
      'image.remove': (p) => ({ id: sessions.images.remove(p.image) }),
      'schedule.set': (p) => this.agent.scheduler.set(p.session, p.everyMs, p.keep),
      'schedule.off': (p) => this.agent.scheduler.off(p.session),
      'schedule.list': () => this.agent.scheduler.list(),
      'schedule.default': (p) => this.agent.scheduler.setDefault(p),
      'session.redraw': async (p, { conn }) => {
        await sessions.resolve(p.id).redraw(conn);
        return {};
      },
      'session.detach': (p, { conn, client }) => {
        const s = sessions.resolve(p.id);
        s.detach(conn);
        client.attached.delete(s.id);
        return {};
      },
      'peer.list': () => this.peers().list(),
      'peer.watch': (_p, { conn, client }) => {
        const community = this.peers();
        if (!client.unwatchPeers) client.unwatchPeers = community.onEvent((e) => conn.send({ t: 'event', ...e }));
        return community.list();
      },
      'peer.add': (p) => this.peers().add(p.address),
      'peer.unpair': (p) => this.peers().unpair(p.peer),
      'peer.forget': (p) => {
        this.peers().forget(p.peer);
        return {};
      },
      'peer.sessions': (_p, { conn, client }) => this.remote(client, conn).sessionsByPeer(false),
      'pair.request': (p) => this.peers().requestPairing(p.peer),
      'pair.confirm': (p) => this.peers().confirmPairing(p.peer, p.code),
      'pair.wait': (p) => this.peers().waitPairing(p.peer, p.timeoutMs),
      'pair.pending': () => this.peers().pending(),
      'pair.accept': (p) => this.peers().accept(p.peer, p.code),
      'pair.reject': (p) => this.peers().reject(p.peer),
      'session.migrate': (p, { conn }) => {
        const peer = this.peers().resolve(p.peer);
        const options = { mode: p.mode ?? 'live', sendFilesUpTo: p.sendFilesUpTo ?? DEFAULT_SEND_FILES_UP_TO, ...(p.takeAsIs ? { takeAsIs: p.takeAsIs } : {}) } as const;
        return this.migrations().migrator.migrate(p.id, p.peer, options, (progress) =>
          conn.send({ t: 'event', event: 'migration.progress', id: p.id, peer: { id: peer.id, name: peer.name }, ...progress }),
        );
      },
      'migration.offer': (p, { client }) => this.migrations().receiver.offer(this.peerOf(client), p),
      'migration.files': (p, { client }) => this.migrations().receiver.files(this.peerOf(client), p.migration),
      'migration.result': (p, { client }) => this.migrations().receiver.result(this.peerOf(client), p.migration),
      'migration.go': (p, { client }) => this.migrations().receiver.go(this.peerOf(client), p.migration),
      'migration.abort': (p, { client }) => this.migrations().receiver.abort(this.peerOf(client), p.migration),
    };
  }
}
