/**
 * A typed client of the local API over any message transport (Unix socket, WebSocket, Electron
 * IPC). It does the hello exchange, matches responses to requests and hands events to listeners.
 *
 * No Node or DOM imports: the CLI and the renderer both use it.
 */
import { VosError } from './errors.js';
import {
  PROTOCOL_VERSION,
  type AgentInfo,
  type AgentMessage,
  type ApiEvent,
  type ClientMessage,
  type Method,
  type ParamsOf,
  type ResultOf,
} from './protocol.js';

/** Carries whole messages both ways. */
export interface MessageTransport {
  send(message: ClientMessage): void;
  /** Registers the one receiver of incoming messages. */
  onMessage(handler: (message: AgentMessage) => void): void;
  /** Called once when the transport is gone, with the reason when there is one. */
  onClose(handler: (reason: VosError | null) => void): void;
  close(): void;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: VosError) => void;
}

export type EventListener = (event: ApiEvent) => void;

/** How long a request refused with `busy` is asked again before the refusal is the answer. */
export const BUSY_RETRY_MS = 10_000;

export class ApiClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Set<EventListener>();
  private readonly closeListeners = new Set<(reason: VosError) => void>();
  private closedWith: VosError | null = null;
  private hello: Promise<AgentInfo>;

  constructor(
    private readonly transport: MessageTransport,
    clientName: string,
  ) {
    let settleHello!: { resolve: (a: AgentInfo) => void; reject: (e: VosError) => void };
    this.hello = new Promise<AgentInfo>((resolve, reject) => {
      settleHello = { resolve, reject };
    });
    // A caller may never await `ready()`; don't let a rejected hello become an unhandled rejection.
    this.hello.catch(() => {});

    transport.onMessage((msg) => {
      switch (msg.t) {
        case 'hello':
          if (msg.protocol !== PROTOCOL_VERSION) {
            settleHello.reject(
              new VosError(
                'unsupported_protocol',
                `the agent speaks protocol ${msg.protocol}, this client ${PROTOCOL_VERSION}: update vOS on one side`,
              ),
            );
            transport.close();
          } else {
            settleHello.resolve(msg.agent);
          }
          return;
        case 'res': {
          const p = this.pending.get(msg.id);
          if (!p) return;
          this.pending.delete(msg.id);
          if (msg.ok) p.resolve(msg.result);
          else p.reject(VosError.fromPayload(msg.error));
          return;
        }
        case 'event':
          for (const l of this.listeners) l(msg);
          return;
        case 'error':
          this.fail(VosError.fromPayload(msg.error));
          settleHello.reject(VosError.fromPayload(msg.error));
          return;
      }
    });
    transport.onClose((reason) => {
      const err = reason ?? new VosError('connection_closed', 'the connection to the agent closed');
      this.fail(err);
      settleHello.reject(err);
    });
    transport.send({ t: 'hello', protocol: PROTOCOL_VERSION, client: clientName });
  }

  /** Resolves with the agent's description once the hello exchange is done. */
  ready(): Promise<AgentInfo> {
    return this.hello;
  }

  /**
   * Sends a request and waits for its answer. `busy` (too many requests in flight on this
   * connection, or on the link to the peer that runs the session) means the agent did not start
   * the request, so it is asked again after a pause that doubles (50 ms up to 1 s), for at most
   * BUSY_RETRY_MS; then the `busy` error is the answer.
   */
  async request<M extends Method>(method: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
    const deadline = Date.now() + BUSY_RETRY_MS;
    for (let pause = 50; ; pause = Math.min(pause * 2, 1000)) {
      try {
        return await this.requestOnce(method, params);
      } catch (err) {
        if (!(err instanceof VosError) || err.code !== 'busy' || Date.now() + pause > deadline) throw err;
      }
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }

  private async requestOnce<M extends Method>(method: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
    await this.hello;
    if (this.closedWith) throw this.closedWith;
    const id = this.nextId++;
    return new Promise<ResultOf<M>>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.transport.send({ t: 'req', id, method, params });
    });
  }

  onEvent(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onClose(listener: (reason: VosError) => void): () => void {
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  get closed(): boolean {
    return this.closedWith !== null;
  }

  close(): void {
    this.transport.close();
  }

  private fail(err: VosError): void {
    if (this.closedWith) return;
    this.closedWith = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const l of this.closeListeners) l(err);
  }
}
