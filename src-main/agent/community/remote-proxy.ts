/**
 * A local client's window onto the sessions of paired peers. Per local connection and peer it
 * opens one API channel over the link (so the peer sees one client per local client, and
 * attach, resize and input behave exactly as they do locally), forwards the requests that name
 * a session `ID@PEER`, and passes the peer's events back with the session ids made global:
 * `ID@PEERID` (the peer's full device id) and `peer` set on every SessionInfo.
 */
import { VosError } from '../../api/errors.js';
import type { ApiClient } from '../../api/client.js';
import type { ApiEvent, Method, MigrationResult, ParamsOf, PeerRef, ResultOf, SessionInfo } from '../../api/protocol.js';
import type { Connection } from '../transports/connection.js';
import type { Community } from './community.js';

/** `abc@alpha` → { session: 'abc', peer: 'alpha' }; null for a local reference. */
export function splitRemoteRef(ref: string): { session: string; peer: string } | null {
  const at = ref.lastIndexOf('@');
  if (at <= 0 || at === ref.length - 1) return null;
  return { session: ref.slice(0, at), peer: ref.slice(at + 1) };
}

export function remoteSessionId(session: string, peerId: string): string {
  return `${session}@${peerId}`;
}

/** Methods that name one session and may be sent on to the peer that runs it. */
export const REMOTE_SESSION_METHODS = [
  'session.kill',
  'session.resize',
  'session.input',
  'session.screen',
  'session.wait',
  'session.attach',
  'session.detach',
] as const satisfies readonly Method[];
export type RemoteSessionMethod = (typeof REMOTE_SESSION_METHODS)[number];

export function isRemoteSessionMethod(method: Method): method is RemoteSessionMethod {
  return (REMOTE_SESSION_METHODS as readonly string[]).includes(method);
}

interface PeerChannel {
  peer: PeerRef;
  client: Promise<ApiClient>;
  /** Sessions of this peer the local client was told about (watch all). */
  known: Set<string>;
  /** Remote sessions the local client is attached to, by global id. */
  attached: Set<string>;
}

export class RemoteProxy {
  private readonly channels = new Map<string, PeerChannel>();
  private watchingAll = false;
  private unsubscribe: (() => void) | null = null;
  private closed = false;

  constructor(
    private readonly conn: Connection,
    private readonly community: Community,
  ) {}

  /** Sends a request about session `ID@PEER` to that peer; the result speaks of global ids. */
  async forward<M extends RemoteSessionMethod>(method: M, params: ParamsOf<M>, ref: { session: string; peer: string }): Promise<ResultOf<M>> {
    const peer = this.community.resolve(ref.peer);
    const channel = this.channel({ id: peer.id, name: peer.name });
    const client = await channel.client;
    let result: unknown;
    try {
      result = await client.request(method, { ...params, id: ref.session } as ParamsOf<M>);
    } catch (err) {
      if (err instanceof VosError) throw new VosError(err.code, `${peer.name}: ${err.message}`);
      throw err;
    }
    const gid = remoteSessionId(ref.session, peer.id);
    if (method === 'session.attach') channel.attached.add(gid);
    if (method === 'session.detach') channel.attached.delete(gid);
    return this.globalize(result, channel.peer) as ResultOf<M>;
  }

  /**
   * `vos migrate ID@PEER TARGET`: PEER, which runs the session, moves it (TARGET may be this
   * machine: the session comes here). The target is named to PEER by its device id; the result
   * speaks of ids as seen from here.
   */
  async migrate(params: ParamsOf<'session.migrate'>, ref: { session: string; peer: string }): Promise<MigrationResult> {
    const source = this.community.resolve(ref.peer);
    const targetId = this.community.isSelf(params.peer) ? this.community.id : this.community.resolve(params.peer).id;
    if (targetId === source.id) throw new VosError('invalid_params', `${ref.session}@${source.name} runs there already`);
    const client = await this.channel({ id: source.id, name: source.name }).client;
    let r: MigrationResult;
    try {
      r = await client.request('session.migrate', { ...params, id: ref.session, peer: targetId });
    } catch (err) {
      // The details (the cause of a failed move, the file it names) come along with the message.
      if (err instanceof VosError) throw new VosError(err.code, `${source.name}: ${err.message}`, err.details);
      throw err;
    }
    const home = r.session.peer?.id === this.community.id;
    const session = home ? { ...r.session, id: this.localized(r.session.id), peer: null } : r.session;
    return { ...r, from: remoteSessionId(r.from, source.id), session };
  }

  /** A peer's name for a session of this machine (ID@OURID) is plain ID here. */
  private localized(ref: string): string {
    const r = splitRemoteRef(ref);
    return r && r.peer === this.community.id ? r.session : ref;
  }

  /** The sessions of every connected paired peer; with `watch`, their changes follow as events. */
  async listAll(watch: boolean): Promise<SessionInfo[]> {
    if (watch && !this.watchingAll) {
      this.watchingAll = true;
      this.unsubscribe = this.community.onPeerLink((peerId, up) => {
        if (up) void this.watchPeer(peerId);
      });
    }
    const lists = await Promise.all(
      this.community.connectedPeers().map(async (peer) => {
        try {
          return await this.sessionsOf(peer, watch);
        } catch {
          return []; // it went away meanwhile: it is simply not listed
        }
      }),
    );
    return lists.flat();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe?.();
    for (const c of this.channels.values()) void c.client.then((client) => client.close(), () => {});
    this.channels.clear();
  }

  private async sessionsOf(peer: PeerRef, watch: boolean): Promise<SessionInfo[]> {
    const channel = this.channel(peer);
    const client = await channel.client;
    const list = await client.request(watch ? 'session.watch' : 'session.list', {});
    const mapped = list.map((s) => this.globalSession(s, channel.peer));
    if (watch) for (const s of mapped) channel.known.add(s.id);
    return mapped;
  }

  private async watchPeer(peerId: string): Promise<void> {
    const peer = this.community.connectedPeers().find((p) => p.id === peerId);
    if (!peer || this.closed) return;
    try {
      for (const session of await this.sessionsOf(peer, true)) this.emit({ event: 'session.added', session });
    } catch {
      /* gone again */
    }
  }

  private channel(peer: PeerRef): PeerChannel {
    const existing = this.channels.get(peer.id);
    if (existing) return existing;
    const channel: PeerChannel = { peer, client: Promise.resolve(null as unknown as ApiClient), known: new Set(), attached: new Set() };
    channel.client = (async () => {
      const client = this.community.channelsFor(peer.id).openClient('vos-peer');
      client.onEvent((e) => this.fromPeer(channel, e));
      client.onClose((reason) => this.channelClosed(channel, reason));
      await client.ready();
      return client;
    })();
    channel.client.catch(() => this.channels.delete(peer.id));
    this.channels.set(peer.id, channel);
    return channel;
  }

  private channelClosed(channel: PeerChannel, reason: VosError): void {
    if (this.channels.get(channel.peer.id) === channel) this.channels.delete(channel.peer.id);
    if (this.closed) return;
    for (const id of channel.attached) {
      this.emit({ event: 'session.disconnected', id, reason: `${channel.peer.name}: ${reason.message}` });
    }
    for (const id of channel.known) this.emit({ event: 'session.removed', id });
  }

  private fromPeer(channel: PeerChannel, e: ApiEvent): void {
    if (this.closed) return;
    const g = this.globalize(e, channel.peer) as ApiEvent;
    if (g.event === 'session.added') channel.known.add(g.session.id);
    if (g.event === 'session.removed') channel.known.delete(g.id);
    this.emit(g);
  }

  private emit(e: ApiEvent): void {
    this.conn.send({ t: 'event', ...e });
  }

  private globalSession(s: SessionInfo, peer: PeerRef): SessionInfo {
    return { ...s, id: remoteSessionId(s.id, peer.id), peer };
  }

  /** Rewrites every session id and SessionInfo in a result or event to its global form. */
  private globalize(value: unknown, peer: PeerRef): unknown {
    if (typeof value !== 'object' || value === null) return value;
    const v = value as Record<string, unknown>;
    const out: Record<string, unknown> = { ...v };
    if (isSessionInfo(v)) return this.globalSession(v, peer);
    if (typeof v.id === 'string') out.id = remoteSessionId(v.id, peer.id);
    if (v.event === 'session.moved' && typeof v.to === 'string') out.to = this.localized(v.to); // it may come here
    if (isSessionInfo(v.session)) out.session = this.globalSession(v.session, peer);
    return out;
  }
}

function isSessionInfo(v: unknown): v is SessionInfo {
  return typeof v === 'object' && v !== null && typeof (v as SessionInfo).id === 'string' && typeof (v as SessionInfo).command === 'string' && 'state' in v;
}
