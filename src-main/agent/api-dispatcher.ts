/**
 * Serves the local API to one connection at a time, whatever the transport: checks each message,
 * runs the method, sends exactly one reply per request, and routes events. A bad request fails
 * that request; a bad message (not a hello or a request) ends that connection only.
 */
import { VosError, describeError } from '../api/errors.js';
import {
  PROTOCOL_VERSION,
  type AgentInfo,
  type Method,
  type ParamsOf,
  type ResultOf,
} from '../api/protocol.js';
import { checkParams, parseClientMessage } from '../api/validate.js';
import { parseSignal } from '../base/signals.js';
import type { SessionManager } from './session-manager.js';
import type { Connection } from './transports/connection.js';

/** What the dispatcher needs from the agent around it. */
export interface AgentServices {
  readonly sessions: SessionManager;
  info(): AgentInfo;
  enableWeb(port?: number): Promise<string>;
  log(message: string): void;
}

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
  /** Sessions this connection views, by id. */
  readonly attached = new Set<string>();
}

/** What a transport holds per connection: feed it messages, tell it when the connection ends. */
export interface ConnectionHandle {
  receive(message: unknown): void;
  /** The transport hit a framing error: reply with it and close. */
  fatal(error: VosError): void;
  closed(): void;
}

export class ApiDispatcher {
  private readonly handlers: Handlers;

  constructor(private readonly agent: AgentServices) {
    this.handlers = this.makeHandlers();
  }

  open(conn: Connection): ConnectionHandle {
    const client = new ClientState();
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
      conn.send({ t: 'hello', protocol: PROTOCOL_VERSION, agent: this.agent.info() });
      return;
    }
    const { id, method, params } = message;
    if (!client.greeted) {
      conn.send({ t: 'res', id, ok: false, error: { code: 'not_ready', message: 'send hello before any request' } });
      return;
    }
    void this.run(conn, client, id, method, params);
  }

  private async run(conn: Connection, client: ClientState, id: number, method: Method, params: unknown): Promise<void> {
    const after: Array<() => void> = [];
    try {
      const checked = checkParams(method, params);
      const handler = this.handlers[method] as Handler<Method>;
      const result = await handler(checked, { conn, client, afterReply: (fn) => after.push(fn) });
      if (client.closed) return;
      conn.send({ t: 'res', id, ok: true, result });
      for (const fn of after) fn();
    } catch (err) {
      if (client.closed) return;
      const error =
        err instanceof VosError ? err : new VosError('internal', `internal error in ${method}: ${describeError(err)}`);
      if (error.code === 'internal') this.agent.log(`${conn.label}: ${error.message}`);
      conn.send({ t: 'res', id, ok: false, error: error.toPayload() });
    }
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
    for (const id of client.attached) {
      try {
        this.agent.sessions.resolve(id).detach(conn);
      } catch {
        /* the session is gone already */
      }
    }
    client.attached.clear();
  }

  private makeHandlers(): Handlers {
    const sessions = this.agent.sessions;
    return {
      'agent.info': () => this.agent.info(),
      'agent.web': async (p) => ({ url: await this.agent.enableWeb(p.port) }),
      'session.list': () => sessions.list(),
      'session.watch': (_p, { conn, client }) => {
        if (!client.unwatch) client.unwatch = sessions.onEvent((e) => conn.send({ t: 'event', ...e }));
        return sessions.list();
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
        let re: RegExp;
        try {
          re = new RegExp(p.pattern, p.flags ?? 'm');
        } catch (err) {
          throw new VosError('invalid_params', `not a valid regular expression: ${describeError(err)}`);
        }
        return sessions.resolve(p.id).waitFor(re, p.timeoutMs);
      },
      'session.attach': async (p, { conn, client, afterReply }) => {
        const s = sessions.resolve(p.id);
        const size = p.cols !== undefined && p.rows !== undefined ? { cols: p.cols, rows: p.rows } : null;
        const { result, release } = await s.attach(conn, size);
        if (client.closed) {
          // The client left while its snapshot was taken; don't keep holding output for it.
          s.detach(conn);
          throw new VosError('connection_closed', 'the client disconnected');
        }
        client.attached.add(s.id);
        afterReply(release);
        return result;
      },
      'session.checkpoint': (p) => sessions.checkpoint(p.id, p.out, p.stop ?? false),
      'session.restore': async (p) => (await sessions.restore(p.file, p.name)).info(),
      'session.detach': (p, { conn, client }) => {
        const s = sessions.resolve(p.id);
        s.detach(conn);
        client.attached.delete(s.id);
        return {};
      },
    };
  }
}
