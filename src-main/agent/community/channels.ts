/**
 * API channels over a paired link. Each channel is one conversation of the local API (hello,
 * requests, responses, events), exactly as a local client has with an agent, so that a remote
 * viewer gets the same guarantees (snapshot then live output, resync, resize by the most recent
 * viewer). Both agents open channels to each other; RPC frames say which way they go:
 *
 *   { ch, d: 'c', m }   a client message on channel `ch`, which the sender opened
 *   { ch, d: 'a', m }   an agent message on channel `ch`, which the receiver opened
 *   { ch, d: 'end', by: 'client' | 'server' }   channel `ch` is closed by its opener / server
 *
 * This agent serves the peer's channels through a ChannelServer (the dispatcher, with the
 * rights a peer has) and opens its own with `openClient`.
 */
import { VosError } from '../../api/errors.js';
import { ApiClient, type MessageTransport } from '../../api/client.js';
import type { AgentMessage, ClientMessage } from '../../api/protocol.js';
import type { ConnectionHandle } from '../api-dispatcher.js';
import type { Connection } from '../transports/connection.js';
import { InFlight, MAX_IN_FLIGHT_PER_LINK } from '../in-flight.js';
import type { Link, RpcOrder } from './link.js';

const MAX_SERVED_CHANNELS = 256;
/**
 * A peer's viewer of a session here lags (skipped, then resynchronised with a fresh snapshot)
 * once its messages about the session hold this much of the link's queue: what the link then
 * holds of one flooding session for that viewer (issue 15 item 8; a local viewer: 4 MiB).
 */
export const PEER_VIEWER_HIGH_WATER_BYTES = 512 * 1024;

/** Serves one channel the peer opened (the agent's dispatcher, restricted to a peer's rights). */
export interface ChannelServer {
  /** `shared`: the link's limit of requests in flight, over all its conversations. */
  open(conn: Connection, shared: InFlight): ConnectionHandle;
}

interface ServedChannel {
  handle: ConnectionHandle;
  closed: boolean;
}

class ClientChannel implements MessageTransport {
  private receiver: ((m: AgentMessage) => void) | null = null;
  private closer: ((reason: VosError | null) => void) | null = null;
  closed = false;

  constructor(
    readonly ch: number,
    private readonly host: ChannelHost,
  ) {}

  send(message: ClientMessage): void {
    if (!this.closed) this.host.sendRaw({ ch: this.ch, d: 'c', m: message }, rpcOrder(`c${this.ch}`, null));
  }

  onMessage(handler: (message: AgentMessage) => void): void {
    this.receiver = handler;
  }

  onClose(handler: (reason: VosError | null) => void): void {
    this.closer = handler;
  }

  close(): void {
    if (this.closed) return;
    this.host.sendRaw({ ch: this.ch, d: 'end', by: 'client' }, rpcOrder(`c${this.ch}`, null));
    this.ended(null);
  }

  deliver(m: AgentMessage): void {
    if (!this.closed) this.receiver?.(m);
  }

  ended(reason: VosError | null): void {
    if (this.closed) return;
    this.closed = true;
    this.host.forgetClient(this.ch);
    this.closer?.(reason);
  }
}

export class ChannelHost {
  private readonly served = new Map<number, ServedChannel>();
  private readonly clients = new Map<number, ClientChannel>();
  private nextChannel = 1;
  private closed = false;
  private readonly inFlight = new InFlight(MAX_IN_FLIGHT_PER_LINK);

  constructor(
    private readonly link: Link,
    private readonly server: ChannelServer,
    private readonly log: (message: string) => void,
  ) {}

  /** A new API conversation with the peer's agent. */
  openClient(label: string): ApiClient {
    if (this.closed) throw new VosError('peer_offline', 'the link to this peer is closed');
    const channel = new ClientChannel(this.nextChannel++, this);
    this.clients.set(channel.ch, channel);
    return new ApiClient(channel, label);
  }

  /** An RPC frame from the peer. Malformed ones close the link: the peer is paired, and broken. */
  receive(raw: unknown): void {
    if (this.closed) return;
    if (typeof raw !== 'object' || raw === null) return this.link.close('an RPC frame that is not an object');
    const { ch, d, m, by } = raw as { ch?: unknown; d?: unknown; m?: unknown; by?: unknown };
    if (typeof ch !== 'number' || !Number.isSafeInteger(ch) || ch <= 0) return this.link.close('an RPC frame without a valid channel');
    if (d === 'c') return this.toServer(ch, m);
    if (d === 'a') {
      if (!isAgentMessage(m)) return this.link.close(`an agent message on channel ${ch} that is not one`);
      this.clients.get(ch)?.deliver(m);
      return;
    }
    if (d === 'end' && by === 'client') {
      const s = this.served.get(ch);
      if (s) this.endServed(ch, s, false);
      return;
    }
    if (d === 'end' && by === 'server') {
      this.clients.get(ch)?.ended(new VosError('connection_closed', 'the peer closed the conversation'));
      return;
    }
    this.link.close(`an RPC frame of unknown direction ${JSON.stringify(String(d)).slice(0, 20)}`);
  }

  /**
   * The peer refused this side's requests because it no longer trusts this machine (unpaired on
   * its side only): the conversations this side opened end at once with `not_paired`, so no
   * caller waits for answers that will not come. Those the peer opened are left as they are.
   */
  peerRefused(): void {
    if (this.closed) return;
    const why = new VosError('not_paired', 'it no longer trusts this machine (unpaired there): pair again to reach its sessions');
    for (const c of [...this.clients.values()]) c.ended(why);
  }

  /** The link is gone or no longer trusted: every channel ends. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const [ch, s] of this.served) this.endServed(ch, s, false);
    for (const c of [...this.clients.values()]) c.ended(new VosError('peer_offline', 'the link to the peer closed'));
  }

  sendRaw(message: unknown, order?: RpcOrder): void {
    if (!this.closed) this.link.sendRpc(message, order);
  }

  forgetClient(ch: number): void {
    this.clients.delete(ch);
  }

  private toServer(ch: number, m: unknown): void {
    let s = this.served.get(ch);
    if (!s) {
      if (this.served.size >= MAX_SERVED_CHANNELS) {
        this.log(`refusing conversation ${ch} of a peer: it has ${MAX_SERVED_CHANNELS} open already`);
        this.sendRaw({ ch, d: 'a', m: { t: 'error', error: { code: 'refused', message: 'too many conversations on this link' } } });
        this.sendRaw({ ch, d: 'end', by: 'server' });
        return;
      }
      // The handle is set right below; the connection's callbacks only run after that.
      const served: ServedChannel = { handle: null as unknown as ConnectionHandle, closed: false };
      const conn: Connection = {
        label: `peer#${ch}`,
        send: (message: AgentMessage) => {
          if (!served.closed) this.sendRaw({ ch, d: 'a', m: message }, rpcOrder(`a${ch}`, message.t === 'event' && 'id' in message && typeof message.id === 'string' ? message.id : null));
        },
        // A peer's viewer lags by its own share of the link's queue (its messages about that
        // session), and at a smaller mark than a local one: its backlog delays the link.
        bufferedBytes: (session?: string) => this.link.bufferedBytesFor(viewerKey(`a${ch}`, session)),
        whenDrained: (cb: () => void, session?: string) => this.link.whenKeyDrained(viewerKey(`a${ch}`, session), cb),
        outputHighWater: PEER_VIEWER_HIGH_WATER_BYTES,
        close: () => this.endServed(ch, served, true),
      };
      served.handle = this.server.open(conn, this.inFlight);
      this.served.set(ch, served);
      s = served;
    }
    s.handle.receive(m);
  }

  private endServed(ch: number, s: ServedChannel, tellPeer: boolean): void {
    if (s.closed) return;
    s.closed = true;
    this.served.delete(ch);
    s.handle.closed();
    if (tellPeer) this.sendRaw({ ch, d: 'end', by: 'server' }, rpcOrder(`a${ch}`, null));
  }
}

/** The order key of a channel's messages about one session, or of all its messages (rpcOrder). */
function viewerKey(channel: string, session: string | undefined): string {
  return session === undefined ? channel : `${channel}:s:${session}`;
}

/**
 * The order of a channel's messages on the link (Link.sendRpc): an event about a session stays
 * behind that session's queued events and behind the channel's other queued messages, but goes
 * ahead of other sessions' (one flooding session does not hold up another's echo); any other
 * message (an answer, the end) stays behind everything queued on its channel.
 */
export function rpcOrder(channel: string, session: string | null): RpcOrder {
  const all = `${channel}`;
  const other = `${channel}:`;
  if (session === null) return { keys: [all, other], after: [all] };
  const own = viewerKey(channel, session);
  return { keys: [all, own], after: [own, other] };
}

function isAgentMessage(m: unknown): m is AgentMessage {
  if (typeof m !== 'object' || m === null) return false;
  const t = (m as { t?: unknown }).t;
  return t === 'hello' || t === 'res' || t === 'event' || t === 'error';
}
