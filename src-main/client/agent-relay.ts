/**
 * One window's connection to the agent through the app's main process: the window's messages go
 * to a socket connection of its own (opened once an agent runs), the agent's come back. What the
 * window sends before that connection is open (its hello, first requests) is kept and sent then.
 * When the agent goes away, the window gets a `connection_closed` error message and connects
 * again (a new relay), which waits for the supervisor's next agent.
 */
import type { MessageTransport } from '../api/client.js';
import { VosError } from '../api/errors.js';
import type { AgentMessage, ClientMessage } from '../api/protocol.js';

/** A window sends little before the agent answers its hello; more than this is not a client. */
const MAX_QUEUED = 1000;

export class AgentRelay {
  private transport: MessageTransport | null = null;
  private queue: ClientMessage[] = [];
  private closed = false;

  constructor(
    open: () => Promise<MessageTransport>,
    private readonly deliver: (message: AgentMessage) => void,
  ) {
    open().then(
      (transport) => {
        if (this.closed) return transport.close();
        this.transport = transport;
        transport.onMessage((m) => this.deliver(m));
        transport.onClose((reason) => this.end(reason ?? new VosError('connection_closed', 'the agent went away')));
        for (const m of this.queue.splice(0)) transport.send(m);
      },
      (err: unknown) => this.end(err instanceof VosError ? err : new VosError('no_agent', String(err))),
    );
  }

  /** A message from the window. */
  receive(message: ClientMessage): void {
    if (this.closed) return;
    if (this.transport) return this.transport.send(message);
    if (this.queue.length >= MAX_QUEUED) return this.end(new VosError('invalid_params', 'too many messages before the agent answered'));
    this.queue.push(message);
  }

  /** The window went away or reconnects: closes this connection. */
  close(): void {
    this.closed = true;
    this.queue = [];
    this.transport?.close();
  }

  /** Tells the window the connection is over (it reconnects) and closes it. */
  private end(reason: VosError): void {
    if (this.closed) return;
    // The renderer treats `connection_closed` as "reconnect"; the reason says why.
    this.deliver({ t: 'error', error: { code: 'connection_closed', message: reason.message } });
    this.close();
  }
}
