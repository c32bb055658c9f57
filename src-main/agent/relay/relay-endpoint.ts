/**
 * Where a restoring program's relayed connections reach this agent (the target of a move): a
 * TCP listener on 127.0.0.1 (IPv4 and, by the IPv4-mapped address, IPv6 sockets) and a Unix
 * socket in the state directory (Unix stream sockets). The restorer connects a new socket of
 * the connection's family and first sends a hello: "VOSRELAY", the restore's key (16 bytes,
 * given to the restorer in its environment: only the user can read it) and the connection's
 * object id (u32, big-endian). The agent answers one byte (ACK) once it has taken the
 * connection, and the restorer waits for it: so every relayed connection is the agent's before
 * the restore says it is done (after that, its key is no longer expected). A connection without
 * a known key within 5 s is closed.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';

const MAGIC = Buffer.from('VOSRELAY');
const KEY_BYTES = 16;
const HELLO_BYTES = MAGIC.length + KEY_BYTES + 4;
const HELLO_TIMEOUT_MS = 5_000;
/** The answer to a hello whose key is expected (VOS_RELAY_ACK in vos-image.h). */
const ACK = Buffer.from([0x06]);

/** What an expected restore gets: the environment for its restorer, and the end of the wait. */
export interface RelayExpectation {
  env: Record<string, string>;
  /** The abstract name the restorer gives the Unix socket of connection `object` (VOS_RELAY_TAG). */
  unixName(object: number): string;
  cancel(): void;
}

export class RelayEndpoint {
  private tcp: Server | null = null;
  private unix: Server | null = null;
  private starting: Promise<void> | null = null;
  private readonly expected = new Map<string, (object: number, socket: Socket) => void>();
  /** Every connection it took, until it closes (stop ends them: a server closes only once they have). */
  private readonly sockets = new Set<Socket>();
  /** Its Unix socket (`<state>/relay.sock`). */
  readonly unixPath: string;

  constructor(
    stateDir: string,
    private readonly log: (message: string) => void,
  ) {
    this.unixPath = join(stateDir, 'relay.sock');
  }

  /**
   * A restore that may bring relayed connections: each one that says this restore's key comes
   * to `onConnection` with its object id, the hello taken off.
   */
  async expect(onConnection: (object: number, socket: Socket) => void): Promise<RelayExpectation> {
    await (this.starting ??= this.start());
    const key = randomBytes(KEY_BYTES).toString('hex');
    const tag = randomBytes(8).toString('hex');
    this.expected.set(key, onConnection);
    const port = (this.tcp!.address() as { port: number }).port;
    return {
      env: { VOS_RELAY_PORT: String(port), VOS_RELAY_UNIX: this.unixPath, VOS_RELAY_KEY: key, VOS_RELAY_TAG: tag },
      unixName: (object) => `vos-relay-${tag}-${object}`,
      cancel: () => this.expected.delete(key),
    };
  }

  /** The TCP relay port (null: not listening yet). */
  get port(): number | null {
    const at = this.tcp?.address();
    return at && typeof at === 'object' ? at.port : null;
  }

  async stop(): Promise<void> {
    const close = (s: Server | null): Promise<void> => new Promise((resolve) => (s ? s.close(() => resolve()) : resolve()));
    const closing = Promise.all([close(this.tcp), close(this.unix)]);
    for (const socket of this.sockets) socket.resetAndDestroy();
    await closing;
    this.tcp = this.unix = null;
    this.starting = null;
    this.expected.clear();
    rmSync(this.unixPath, { force: true });
  }

  private async start(): Promise<void> {
    const listen = (server: Server, at: { port: number; host: string } | { path: string }): Promise<void> =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(at, () => {
          server.off('error', reject);
          resolve();
        });
      });
    this.tcp = createServer({ allowHalfOpen: true }, (socket) => this.hello(socket));
    this.unix = createServer({ allowHalfOpen: true }, (socket) => this.hello(socket));
    await listen(this.tcp, { port: 0, host: '127.0.0.1' });
    rmSync(this.unixPath, { force: true }); // an earlier agent's (the state directory is ours alone)
    await listen(this.unix, { path: this.unixPath });
  }

  private hello(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    let got: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), HELLO_TIMEOUT_MS);
    socket.on('error', () => {}); // a caller that goes away: nothing to tell
    const onData = (chunk: Buffer): void => {
      got = Buffer.concat([got, chunk]);
      if (got.length < HELLO_BYTES) return;
      socket.off('data', onData);
      socket.pause();
      clearTimeout(timer);
      const key = got.subarray(MAGIC.length, MAGIC.length + KEY_BYTES).toString('hex');
      const handler = got.subarray(0, MAGIC.length).equals(MAGIC) ? this.expected.get(key) : undefined;
      if (!handler) {
        this.log('a connection to the relay endpoint without a known key was closed');
        socket.destroy();
        return;
      }
      const rest = got.subarray(HELLO_BYTES);
      if (rest.length) socket.unshift(rest);
      socket.write(ACK); // before anything relayed: the restorer reads exactly this byte
      handler(got.readUInt32BE(MAGIC.length + KEY_BYTES), socket);
    };
    socket.on('data', onData);
  }
}
