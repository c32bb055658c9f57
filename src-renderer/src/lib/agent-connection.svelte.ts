/**
 * The renderer's connection to its agent: picks the transport, does the hello, and reconnects
 * with a back-off when the link drops (web mode: the agent restarted or the laptop slept).
 */
import { ApiClient, type MessageTransport } from '../../../src-main/api/client';
import type { AgentInfo } from '../../../src-main/api/protocol';
import { bridgeTransport, takeToken, webSocketTransport } from './transports';

export type ConnectionStatus = 'connecting' | 'connected' | 'disconnected' | 'no-token';

export class AgentConnection {
  status = $state<ConnectionStatus>('connecting');
  agent = $state<AgentInfo | null>(null);
  lastError = $state<string | null>(null);
  /** The current client; replaced on every reconnect. */
  client = $state.raw<ApiClient | null>(null);

  private retryMs = 500;
  private readonly token: string | null;

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
    this.status = 'connecting';
    const client = new ApiClient(this.transport(), window.vosBridge ? 'electron' : 'web');
    client.onClose((reason) => {
      if (this.client !== client) return;
      this.client = null;
      this.status = 'disconnected';
      this.lastError = reason.message;
      setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 5000);
    });
    client.ready().then(
      (agent) => {
        this.agent = agent;
        this.client = client;
        this.status = 'connected';
        this.lastError = null;
        this.retryMs = 500;
      },
      (err: Error) => {
        this.lastError = err.message;
      },
    );
  }
}
