/**
 * Web mode: the renderer bundle over HTTP and the local API over a WebSocket, on 127.0.0.1 only.
 *
 * The API endpoint (`/api?token=...`) needs the random token printed with the URL, and the
 * request's Host (and Origin, when a browser sends one) must name this very address: another
 * local user, or a web page in the user's browser (DNS rebinding, cross-site WebSocket), cannot
 * talk to the agent. The static files carry no secrets and are served to anyone on loopback.
 */
import { timingSafeEqual } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, sep } from 'node:path';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import { VosError } from '../../api/errors.js';
import { MAX_CLIENT_FRAME_BYTES, type AgentMessage } from '../../api/protocol.js';
import type { ApiDispatcher } from '../api-dispatcher.js';
import type { Connection } from './connection.js';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
};

const DRAIN_POLL_MS = 25;
const DRAINED_BYTES = 64 * 1024;

class WebSocketConnection implements Connection {
  constructor(
    readonly label: string,
    private readonly ws: WebSocket,
  ) {}

  send(message: AgentMessage): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify(message));
  }

  bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }

  whenDrained(cb: () => void): void {
    const poll = (): void => {
      if (this.ws.readyState !== this.ws.OPEN) return;
      if (this.ws.bufferedAmount <= DRAINED_BYTES) cb();
      else setTimeout(poll, DRAIN_POLL_MS);
    };
    poll();
  }

  close(): void {
    this.ws.close(1008, 'protocol error');
  }
}

function sameBytes(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class WebServer {
  private readonly http: Server;
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_CLIENT_FRAME_BYTES });
  private port = 0;
  private counter = 0;

  constructor(
    private readonly dispatcher: ApiDispatcher,
    private readonly staticDir: string,
    /** The access token (kept across restarts by web-address.ts). */
    readonly token: string,
  ) {
    this.http = createServer((req, res) => this.serveStatic(req, res));
    this.http.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
  }

  /** Listens on 127.0.0.1:port (0 picks a free port). */
  async listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, '127.0.0.1', () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    this.port = (this.http.address() as AddressInfo).port;
  }

  get listeningPort(): number {
    return this.port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/?token=${this.token}`;
  }

  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  /**
   * Sent with every response. The page's own meta policy cannot forbid framing (browsers ignore
   * frame-ancestors there), so the header does, against clickjacking by another site. Scripts
   * come from this server only; styles may be inline because xterm.js sets them on its elements.
   */
  private securityHeaders(): Record<string, string> {
    const csp = [
      "default-src 'self'",
      "script-src 'self'",
      "style-src 'self' 'unsafe-inline'",
      "img-src 'self' data:",
      `connect-src 'self' ws://127.0.0.1:${this.port} ws://localhost:${this.port}`,
      "object-src 'none'",
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join('; ');
    return {
      'Content-Security-Policy': csp,
      'X-Frame-Options': 'DENY',
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'Cross-Origin-Opener-Policy': 'same-origin',
    };
  }

  private hostAllowed(req: IncomingMessage): boolean {
    const allowed = [`127.0.0.1:${this.port}`, `localhost:${this.port}`];
    if (!allowed.includes(req.headers.host ?? '')) return false;
    const origin = req.headers.origin;
    return origin === undefined || allowed.some((a) => origin === `http://${a}`);
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const token = url.searchParams.get('token') ?? '';
    if (url.pathname !== '/api' || !this.hostAllowed(req) || !sameBytes(token, this.token)) {
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws));
  }

  private accept(ws: WebSocket): void {
    const conn = new WebSocketConnection(`web#${++this.counter}`, ws);
    const handle = this.dispatcher.open(conn);
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (isBinary) {
        handle.fatal(new VosError('bad_frame', 'binary messages are not part of the protocol'));
        return;
      }
      let value: unknown;
      try {
        value = JSON.parse(data.toString());
      } catch {
        handle.fatal(new VosError('bad_frame', 'message is not valid JSON'));
        return;
      }
      handle.receive(value);
    });
    ws.on('error', () => {
      /* oversized or broken frames: ws closes the socket; 'close' follows */
    });
    ws.on('close', () => handle.closed());
  }

  /**
   * `GET /api` with the token in `X-Vos-Token`: 204 when it is this agent's, else 403. A page
   * whose WebSocket is refused cannot see why (browsers hide the status), so it asks here, to
   * tell a wrong or stale token ("open the address `vos web` prints") from an agent that is gone
   * ("reconnecting"). It tells no more than the WebSocket's refusal does.
   */
  private checkToken(req: IncomingMessage, res: ServerResponse): void {
    const sent = req.headers['x-vos-token'];
    const ok = typeof sent === 'string' && sameBytes(sent, this.token);
    res.writeHead(ok ? 204 : 403, { 'Cache-Control': 'no-store' }).end();
  }

  private serveStatic(req: IncomingMessage, res: ServerResponse): void {
    for (const [name, value] of Object.entries(this.securityHeaders())) res.setHeader(name, value);
    if (!this.hostAllowed(req)) {
      res.writeHead(403).end();
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    let pathname: string;
    try {
      pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://127.0.0.1').pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    if (pathname === '/api') {
      this.checkToken(req, res);
      return;
    }
    if (pathname === '/') pathname = '/index.html';
    const file = normalize(join(this.staticDir, pathname));
    if (!file.startsWith(this.staticDir + sep)) {
      res.writeHead(404).end();
      return;
    }
    let size: number;
    try {
      const st = statSync(file);
      if (!st.isFile()) throw new Error('not a file');
      size = st.size;
    } catch {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    res.writeHead(200, {
      'Content-Type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
      'Content-Length': size,
      'Cache-Control': 'no-cache',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    createReadStream(file).on('error', () => res.destroy()).pipe(res);
  }
}
