/**
 * The local API on a Unix socket: length-prefixed JSON frames (base/frame-codec). The socket file
 * is created 0600 inside the 0700 state directory, so only the same user can connect.
 */
import { unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { VosError } from '../../api/errors.js';
import { MAX_CLIENT_FRAME_BYTES, type AgentMessage } from '../../api/protocol.js';
import { FrameDecoder, encodeFrame } from '../../base/frame-codec.js';
import type { ApiDispatcher } from '../api-dispatcher.js';
import type { Connection } from './connection.js';
import { listenPrivate } from '../../base/private-socket.js';

/** How long a closing connection may take to flush its last reply before it is cut. */
const CLOSE_GRACE_MS = 2000;

class SocketConnection implements Connection {
  constructor(
    readonly label: string,
    private readonly socket: Socket,
  ) {}

  send(message: AgentMessage): void {
    if (this.socket.writable) this.socket.write(encodeFrame(message));
  }

  bufferedBytes(): number {
    return this.socket.writableLength;
  }

  whenDrained(cb: () => void): void {
    if (this.socket.writableLength === 0) setImmediate(cb);
    else this.socket.once('drain', cb);
  }

  close(): void {
    this.socket.end();
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
  }
}

export class UnixSocketServer {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private counter = 0;
  private path: string | null = null;

  constructor(private readonly dispatcher: ApiDispatcher) {
    this.server = createServer((socket) => this.accept(socket));
  }

  async listen(path: string): Promise<void> {
    try {
      unlinkSync(path); // stale: the caller holds the agent lock
    } catch {
      /* not there */
    }
    await listenPrivate(this.server, path); // in the 0700 state directory
    this.path = path;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.path) {
      try {
        unlinkSync(this.path);
      } catch {
        /* already gone */
      }
    }
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    const conn = new SocketConnection(`unix#${++this.counter}`, socket);
    const handle = this.dispatcher.open(conn);
    const decoder = new FrameDecoder(MAX_CLIENT_FRAME_BYTES);
    let failed = false;
    socket.on('data', (chunk: Buffer) => {
      if (failed) return;
      let messages: unknown[];
      try {
        messages = decoder.push(chunk);
      } catch (err) {
        failed = true;
        handle.fatal(err instanceof VosError ? err : new VosError('bad_frame', String(err)));
        return;
      }
      for (const m of messages) handle.receive(m);
    });
    socket.on('error', () => {
      /* a client that vanished mid-write: 'close' follows */
    });
    socket.on('close', () => {
      this.sockets.delete(socket);
      handle.closed();
    });
  }
}
