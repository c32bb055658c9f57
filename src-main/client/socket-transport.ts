/** The client end of the agent's Unix socket: frames in both directions (base/frame-codec). */
import { connect, type Socket } from 'node:net';
import { ApiClient, type MessageTransport } from '../api/client.js';
import { VosError } from '../api/errors.js';
import { MAX_AGENT_FRAME_BYTES, type AgentMessage, type ClientMessage } from '../api/protocol.js';
import { FrameDecoder, encodeFrame } from '../base/frame-codec.js';

class SocketTransport implements MessageTransport {
  private handler: ((m: AgentMessage) => void) | null = null;
  private closeHandler: ((reason: VosError | null) => void) | null = null;
  private readonly decoder = new FrameDecoder(MAX_AGENT_FRAME_BYTES);
  private closed = false;

  constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      let messages: unknown[];
      try {
        messages = this.decoder.push(chunk);
      } catch (err) {
        this.finish(err as VosError);
        socket.destroy();
        return;
      }
      for (const m of messages) this.handler?.(m as AgentMessage);
    });
    socket.on('error', (err) => this.finish(new VosError('connection_closed', `connection to the agent failed: ${err.message}`)));
    socket.on('close', () => this.finish(null));
  }

  send(message: ClientMessage): void {
    if (!this.closed) this.socket.write(encodeFrame(message));
  }

  onMessage(handler: (m: AgentMessage) => void): void {
    this.handler = handler;
  }

  onClose(handler: (reason: VosError | null) => void): void {
    this.closeHandler = handler;
  }

  close(): void {
    this.socket.end();
  }

  private finish(reason: VosError | null): void {
    if (this.closed) return;
    this.closed = true;
    this.closeHandler?.(reason);
  }
}

/** Opens the agent's socket as a message transport; fails with `no_agent` when nothing listens. */
export async function openSocketTransport(socketPath: string): Promise<MessageTransport> {
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = connect(socketPath);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
      throw new VosError('no_agent', `no agent is running for this state directory (nothing listens on ${socketPath})`);
    }
    throw new VosError('no_agent', `cannot reach the agent at ${socketPath}: ${err.message}`);
  });
  return new SocketTransport(socket);
}

/** Connects to the agent's socket and completes the hello exchange. */
export async function connectToAgent(socketPath: string, clientName: string): Promise<ApiClient> {
  const client = new ApiClient(await openSocketTransport(socketPath), clientName);
  await client.ready();
  return client;
}
