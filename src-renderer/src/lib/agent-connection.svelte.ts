/**
 * The renderer's connection to its agent: picks the transport, does the hello, and reconnects
 * with a back-off whenever the link drops or cannot be made (the agent restarted, crashed, or the
 * laptop slept). In web mode the next agent of the same state directory serves the same port and
 * token (the agent keeps them in web.json), so the page comes back by itself; a refused
 * connection is checked against the agent, so that a wrong or stale token is said as such
 * instead of retried forever.
 */
import { ApiClient, type MessageTransport } from '../../../src-main/api/client';
import type { AgentInfo } from '../../../src-main/api/protocol';
import { bridgeTransport, checkToken, takeToken, webSocketTransport } from './transports';

/**
 * connecting: the first attempt; connected; lost: no agent answers (it was there and went, or
 * never answered), retrying; bad-token: the agent here refuses this page's token; no-token: the
 * page was opened without one.
 */
export type ConnectionStatus = 'connecting' | 'connected' | 'lost' | 'bad-token' | 'no-token';

export const STATUS_TEXT: Record<ConnectionStatus, string> = {
  connecting: 'connecting',
  connected: 'connected',
  lost: 'lost the agent — reconnecting',
  'bad-token': 'wrong token',
  'no-token': 'no token',
};

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 2000;

export class AgentConnection {
  status = $state<ConnectionStatus>('connecting');
  /** The agent last connected to (kept while it is lost: its name stays on the page). */
  agent = $state<AgentInfo | null>(null);
  lastError = $state<string | null>(null);
  /** When the connection was lost (ms since the epoch), or null. */
  lostAt = $state<number | null>(null);
  /** The current client; null while there is no connection. Replaced on every reconnect. */
  client = $state.raw<ApiClient | null>(null);

  private retryMs = FIRST_RETRY_MS;
  private readonly token: string | null;
  /** The attempt under way; an older one's callbacks are ignored. */
  private attempt: ApiClient | null = null;

  constructor() {
    this.token = window.vosBridge ? null : takeToken();
    if (!window.vosBridge && !this.token) {
      this.status = 'no-token';
      return;
    }
    this.connect();
  }

  private transport(): MessageTransport {
    return window.vosBridge ? bridgeTransport(window.vosBridge) : webSocketTransport(this.token!);
  }

  private connect(): void {
    const client = new ApiClient(this.transport(), window.vosBridge ? 'electron' : 'web');
    this.attempt = client;
    client.onClose((reason) => {
      if (this.attempt !== client || this.client !== client) return; // not connected yet: the hello's failure says it
      this.client = null;
      this.lostAt = Date.now();
      this.lastError = reason.message;
      this.status = 'lost';
      this.retryMs = FIRST_RETRY_MS;
      this.retry();
    });
    client.ready().then(
      (agent) => {
        if (this.attempt !== client) return;
        this.agent = agent;
        this.client = client;
        this.status = 'connected';
        this.lastError = null;
        this.lostAt = null;
        this.retryMs = FIRST_RETRY_MS;
      },
      (err: Error) => {
        if (this.attempt !== client) return;
        void this.failed(err);
      },
    );
  }

  /** An attempt that did not get through: a refused token ends the retries, anything else is retried. */
  private async failed(err: Error): Promise<void> {
    if (this.token && (await checkToken(this.token)) === 'refused') {
      this.status = 'bad-token';
      this.lastError = null;
      this.client = null;
      return;
    }
    if (this.status !== 'lost') this.lostAt ??= Date.now();
    this.status = 'lost';
    this.lastError = err.message;
    this.retry();
  }

  private retry(): void {
    const wait = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
    setTimeout(() => this.connect(), wait);
  }
}
