/**
 * A local client's window onto the sessions of paired peers. Per local connection and peer it
 * opens one API channel over the link (so the peer sees one client per local client, and
 * attach, resize and input behave exactly as they do locally), forwards the requests that name
 * a session `ID@PEER`, and passes the peer's events back with the session ids made global:
 * `ID@PEERID` (the peer's full device id) and `peer` set on every SessionInfo.
 *
 * A peer that does not answer is not waited for forever: its hello and list-like requests have
 * ANSWER_TIMEOUT_MS, `session.wait` the caller's own timeout and that much more. A peer that no
 * longer trusts this machine (unpaired on its side only) ends the channel with `not_paired`
 * (channels.ts), which `vos ls --all` shows in place of its sessions.
 */
import { VosError } from '../../api/errors.js';
import type { ApiClient } from '../../api/client.js';
import type { ApiEvent, Method, MigrationResult, ParamsOf, PeerRef, PeerSessions, ResultOf, SessionInfo } from '../../api/protocol.js';
import type { Connection } from '../transports/connection.js';
import type { Community } from './community.js';
import { withTimeout } from '../../base/with-timeout.js';

/** How long a peer has to answer a hello or a list-like request. */
export const ANSWER_TIMEOUT_MS = 10_000;
/** An attach's snapshot may be large on a slow link. */
const ATTACH_TIMEOUT_MS = 30_000;
/**
 * A remote viewer whose local connection holds more than this is skipped (smaller than a local
 * viewer's 4 MiB: its output has crossed a link already, and a stopped `vos attach ID@PEER` grew
 * this agent by 260 MiB in 20 s). The peer is told to stop sending (detach); once the connection
 * drains, the session is attached again there and the viewer gets `session.resync`.
 */
export const REMOTE_VIEWER_HIGH_WATER_BYTES = 1024 * 1024;

/** A remote session the local viewer lags on: skipped, then being resynchronised (output held). */
type Lag = { state: 'skipping' } | { state: 'resyncing'; held: ApiEvent[] };

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
  'session.redraw',
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
  /** Those of them it lags on, by global id. */
  lagging: Map<string, Lag>;
}

export class RemoteProxy {
  private readonly channels = new Map<string, PeerChannel>();
  /**
   * Per peer whose channel closed: the sessions the local client was told are unreachable (not
   * removed). When the peer is back, those it no longer has are removed for good.
   */
  private readonly unreachable = new Map<string, Set<string>>();
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
    let result: unknown;
    try {
      const client = await channel.client;
      const ms = timeoutFor(method, params);
      result = await withTimeout(client.request(method, { ...params, id: ref.session } as ParamsOf<M>), ms, `${peer.name} did not answer ${method} within ${ms / 1000} s`);
    } catch (err) {
      if (err instanceof VosError) throw new VosError(err.code, `${peer.name}: ${err.message}`);
      throw err;
    }
    const gid = remoteSessionId(ref.session, peer.id);
    if (method === 'session.attach') channel.attached.add(gid);
    if (method === 'session.detach') channel.attached.delete(gid);
    if (method === 'session.attach' || method === 'session.detach') channel.lagging.delete(gid); // a fresh start
    return this.globalize(result, channel.peer) as ResultOf<M>;
  }

  /**
   * `vos migrate ID@PEER TARGET`: PEER, which runs the session, moves it here. A paired machine
   * may move a session of PEER only to itself (PEER refuses anything else, api/peer-rights.ts),
   * so TARGET must be this machine; another is refused here, saying where to ask. The target is
   * named to PEER by its device id; the result speaks of ids as seen from here.
   */
  async migrate(params: ParamsOf<'session.migrate'>, ref: { session: string; peer: string }): Promise<MigrationResult> {
    const source = this.community.resolve(ref.peer);
    const targetId = this.community.isSelf(params.peer) ? this.community.id : this.community.resolve(params.peer).id;
    if (targetId === source.id) throw new VosError('invalid_params', `${ref.session}@${source.name} runs there already`);
    if (targetId !== this.community.id) {
      const target = this.community.resolve(params.peer).name;
      throw new VosError(
        'refused',
        `${ref.session}@${source.name} can be moved from here only to this machine: a paired machine may move a session only to itself. To move it to ${target}, ask on ${source.name}: vos migrate ${ref.session} ${target}`,
      );
    }
    let r: MigrationResult;
    try {
      const client = await this.channel({ id: source.id, name: source.name }).client;
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
    // A peer that cannot list them (it went away, no longer trusts this machine) is not listed.
    return (await this.sessionsByPeer(watch)).flatMap((p) => p.sessions);
  }

  /** Like `listAll`, machine by machine, each with why its sessions could not be had. */
  async sessionsByPeer(watch: boolean): Promise<PeerSessions[]> {
    if (watch && !this.watchingAll) {
      this.watchingAll = true;
      this.unsubscribe = this.community.onPeerLink((peerId, up) => {
        if (up) void this.watchPeer(peerId);
      });
    }
    return Promise.all(
      this.community.connectedPeers().map(async (peer): Promise<PeerSessions> => {
        const ref = { id: peer.id, name: peer.name };
        try {
          return { peer: ref, sessions: await this.sessionsOf(peer, watch), problem: null, code: null };
        } catch (err) {
          const e = err instanceof VosError ? err : new VosError('internal', String(err));
          return { peer: ref, sessions: [], problem: e.message, code: e.code };
        }
      }),
    );
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
    const method = watch ? 'session.watch' : 'session.list';
    const list = await withTimeout(client.request(method, {}), ANSWER_TIMEOUT_MS, `${peer.name} did not answer ${method} within ${ANSWER_TIMEOUT_MS / 1000} s`);
    const mapped = list.map((s) => this.globalSession(s, channel.peer));
    if (watch) for (const s of mapped) channel.known.add(s.id);
    return mapped;
  }

  private async watchPeer(peerId: string): Promise<void> {
    const peer = this.community.connectedPeers().find((p) => p.id === peerId);
    if (!peer || this.closed) return;
    try {
      const sessions = await this.sessionsOf(peer, true);
      for (const session of sessions) this.emit({ event: 'session.added', session });
      const before = this.unreachable.get(peerId);
      this.unreachable.delete(peerId);
      const now = new Set(sessions.map((s) => s.id));
      for (const id of before ?? []) if (!now.has(id)) this.emit({ event: 'session.removed', id });
    } catch {
      /* gone again */
    }
  }

  private channel(peer: PeerRef): PeerChannel {
    const existing = this.channels.get(peer.id);
    if (existing) return existing;
    const channel: PeerChannel = { peer, client: Promise.resolve(null as unknown as ApiClient), known: new Set(), attached: new Set(), lagging: new Map() };
    channel.client = (async () => {
      const client = this.community.channelsFor(peer.id).openClient('vos-peer');
      client.onEvent((e) => this.fromPeer(channel, e));
      client.onClose((reason) => this.channelClosed(channel, reason));
      try {
        await withTimeout(client.ready(), ANSWER_TIMEOUT_MS, `${peer.name} did not answer within ${ANSWER_TIMEOUT_MS / 1000} s`);
      } catch (err) {
        client.close(); // a late hello finds no channel; the next request opens a new one
        throw err;
      }
      return client;
    })();
    channel.client.catch(() => {
      if (this.channels.get(peer.id) === channel) this.channels.delete(peer.id);
    });
    this.channels.set(peer.id, channel);
    return channel;
  }

  private channelClosed(channel: PeerChannel, reason: VosError): void {
    if (this.channels.get(channel.peer.id) === channel) this.channels.delete(channel.peer.id);
    if (this.closed) return;
    for (const id of channel.attached) {
      this.emit({ event: 'session.disconnected', id, reason: `${channel.peer.name}: ${reason.message}` });
    }
    // Not forgotten: the machine cannot be reached. A watcher may show them as unreachable.
    const why = `${channel.peer.name} cannot be reached: ${reason.message}`;
    if (channel.known.size > 0) {
      const kept = this.unreachable.get(channel.peer.id) ?? new Set<string>();
      for (const id of channel.known) kept.add(id);
      this.unreachable.set(channel.peer.id, kept);
    }
    for (const id of channel.known) this.emit({ event: 'session.removed', id, unreachable: why });
  }

  private fromPeer(channel: PeerChannel, e: ApiEvent): void {
    if (this.closed) return;
    // Only this agent says a session is unreachable; a peer's word on it (its own peers) stays there.
    if (e.event === 'session.removed' && 'unreachable' in e) e = { event: 'session.removed', id: e.id };
    this.passOn(channel, this.globalize(e, channel.peer) as ApiEvent);
  }

  /** An event of the peer, its ids made global, to the local client (unless it lags on its session). */
  private passOn(channel: PeerChannel, g: ApiEvent): void {
    if ((g.event === 'session.output' || g.event === 'session.resync') && channel.attached.has(g.id) && this.lags(channel, g)) return;
    if (g.event === 'session.added') channel.known.add(g.session.id);
    if (g.event === 'session.removed') channel.known.delete(g.id);
    this.emit(g);
  }

  /**
   * Whether this output event is not passed on now: the viewer lags on its session (skipped, or
   * held while it is resynchronised), or starts to lag with it.
   */
  private lags(channel: PeerChannel, g: Extract<ApiEvent, { event: 'session.output' | 'session.resync' }>): boolean {
    const lag = channel.lagging.get(g.id);
    if (lag?.state === 'resyncing') {
      lag.held.push(g);
      return true;
    }
    if (lag) return true;
    if (this.conn.bufferedBytes() <= REMOTE_VIEWER_HIGH_WATER_BYTES) return false;
    channel.lagging.set(g.id, { state: 'skipping' });
    const session = splitRemoteRef(g.id)!.session;
    void this.resync(channel, g.id, session);
    return true;
  }

  /** Stops the peer sending a lagging viewer's output; once it drains, a fresh snapshot and live output. */
  private async resync(channel: PeerChannel, gid: string, session: string): Promise<void> {
    const still = (): boolean => !this.closed && channel.attached.has(gid) && channel.lagging.get(gid)?.state === 'skipping';
    try {
      const client = await channel.client;
      // After this answer nothing of the session comes on the channel (it keeps order) until the re-attach.
      await withTimeout(client.request('session.detach', { id: session }), ANSWER_TIMEOUT_MS, `${channel.peer.name} did not answer`);
      await new Promise<void>((resolve) => this.conn.whenDrained(resolve));
      if (!still()) return;
      const lag: Lag = { state: 'resyncing', held: [] };
      channel.lagging.set(gid, lag);
      // No size: the viewer's own size stays as the peer knows it from its other viewers.
      const { snapshot } = await withTimeout(client.request('session.attach', { id: session }), ATTACH_TIMEOUT_MS, `${channel.peer.name} did not answer`);
      if (this.closed || channel.lagging.get(gid) !== lag) return;
      channel.lagging.delete(gid);
      if (!channel.attached.has(gid)) {
        void client.request('session.detach', { id: session }).catch(() => {});
        return;
      }
      this.emit({ event: 'session.resync', id: gid, snapshot });
      for (const e of lag.held) if (!this.closed) this.passOn(channel, e);
    } catch (err) {
      if (this.closed || !channel.attached.has(gid)) return;
      channel.lagging.delete(gid);
      channel.attached.delete(gid);
      this.emit({ event: 'session.disconnected', id: gid, reason: `${channel.peer.name}: ${err instanceof Error ? err.message : String(err)}` });
    }
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

/** How long a forwarded request may take: the caller's own timeout for a wait, plus the way there and back. */
function timeoutFor(method: RemoteSessionMethod, params: unknown): number {
  if (method === 'session.wait') return (params as ParamsOf<'session.wait'>).timeoutMs + ANSWER_TIMEOUT_MS;
  if (method === 'session.attach') return ATTACH_TIMEOUT_MS;
  return ANSWER_TIMEOUT_MS;
}


function isSessionInfo(v: unknown): v is SessionInfo {
  return typeof v === 'object' && v !== null && typeof (v as SessionInfo).id === 'string' && typeof (v as SessionInfo).command === 'string' && 'state' in v;
}
