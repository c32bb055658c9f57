/**
 * Accepted connections whose peer has not yet said who it is: the TLS handshake or the HELLO is
 * still under way. Each costs a descriptor and tens of kilobytes, and anyone who can reach the
 * port can open them, so they are limited per source (an IPv4 address, an IPv6 /64: one host
 * has a whole /64) and in all; one over a limit is closed at once, and one still unidentified
 * after `withinMs` is closed then (the TLS handshake and the HELLO have shorter timeouts of
 * their own; this is the bound whatever stage it hangs in). A connection stops counting once
 * its HELLO is checked (`identified`) or it closes.
 */
import { isIPv4, type Socket } from 'node:net';

export interface UnidentifiedLimits {
  perSource: number;
  total: number;
  withinMs: number;
}

interface Pending {
  socket: Socket;
  source: string;
  timer: NodeJS.Timeout;
}

export class UnidentifiedConnections {
  /** By the connection's remote address and port. */
  private readonly pending = new Map<string, Pending>();
  private readonly perSource = new Map<string, number>();

  constructor(
    private readonly limits: UnidentifiedLimits,
    private readonly log: (message: string) => void,
  ) {}

  /** Connections counted now (for tests and the log). */
  get size(): number {
    return this.pending.size;
  }

  /** A new TCP connection: counted, or closed at once if over a limit (then false). */
  admit(socket: Socket): boolean {
    const key = keyOf(socket);
    if (!key) {
      socket.destroy();
      return false;
    }
    const source = sourceOf(socket.remoteAddress!);
    const fromThere = this.perSource.get(source) ?? 0;
    if (fromThere >= this.limits.perSource || this.pending.size >= this.limits.total) {
      socket.destroy();
      this.log(
        fromThere >= this.limits.perSource
          ? `refusing connections from ${source}: ${fromThere} of its connections have not said who they are yet`
          : `refusing connections: ${this.pending.size} have not said who they are yet`,
      );
      return false;
    }
    const timer = setTimeout(() => socket.destroy(), this.limits.withinMs);
    timer.unref();
    this.pending.set(key, { socket, source, timer });
    this.perSource.set(source, fromThere + 1);
    socket.once('close', () => this.release(key, socket));
    return true;
  }

  /** The connection from socket's remote end said who it is (HELLO checked): it no longer counts. */
  identified(socket: { remoteAddress?: string; remotePort?: number }): void {
    const key = keyOf(socket);
    const p = key ? this.pending.get(key) : undefined;
    if (p) this.release(key!, p.socket);
  }

  /** Closes every connection still counted (the agent is stopping). */
  closeAll(): void {
    for (const p of [...this.pending.values()]) p.socket.destroy();
  }

  private release(key: string, socket: Socket): void {
    const p = this.pending.get(key);
    if (!p || p.socket !== socket) return;
    clearTimeout(p.timer);
    this.pending.delete(key);
    const left = (this.perSource.get(p.source) ?? 1) - 1;
    if (left > 0) this.perSource.set(p.source, left);
    else this.perSource.delete(p.source);
  }
}

function keyOf(socket: { remoteAddress?: string; remotePort?: number }): string | null {
  return socket.remoteAddress && socket.remotePort ? `${socket.remoteAddress}|${socket.remotePort}` : null;
}

/** Who is counted as one source: an IPv4 address (IPv4-mapped ones too), or an IPv6 /64. */
export function sourceOf(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (isIPv4(address)) return address;
  const bare = address.split('%')[0]!.toLowerCase();
  const [head, tail] = bare.includes('::') ? bare.split('::') : [bare, null];
  const front = head ? head.split(':') : [];
  const back = tail ? tail.split(':') : [];
  const groups = tail === null ? front : [...front, ...Array<string>(Math.max(0, 8 - front.length - back.length)).fill('0'), ...back];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}
