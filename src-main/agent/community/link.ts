/**
 * One link: the single TLS connection between this agent and one peer (both sides present
 * their certificate; each checks the other's by its device id, the SHA-256 of it), carrying
 * link frames (base/link-frame): HELLO once each way, CONTROL messages (pairing), RPC messages
 * (the API, once the peer is paired), PING/PONG heartbeats and multiplexed byte streams.
 *
 * Until the peer is trusted (paired), JSON frames are limited to 64 KiB and the owner refuses
 * everything but pairing. A malformed frame, a HELLO that does not match the certificate, a
 * sender that ignores flow control, or silence for DEAD_AFTER_MS closes this link only.
 */
import { randomBytes } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { VosError, type ErrorCode } from '../../api/errors.js';
import { deviceIdOf, isDeviceId } from '../../base/device-id.js';
import { LINK_FRAME_HEADER_BYTES, LinkFrameDecoder, LinkFrameError, encodeLinkFrame, encodeLinkFrameParts, type LinkFrame } from '../../base/link-frame.js';
import { cleanPeerText, PEER_FIELD_MAX, PEER_NAME_MAX } from '../../base/peer-text.js';
import { IncomingStream, OutgoingStream, type StreamCarrier } from './link-streams.js';
import { DEAD_AFTER_MS, PING_EVERY_MS } from './link-timing.js';

/** 2: HELLO says only what discovery and pairing need (no kernel, no load). */
export const LINK_PROTOCOL_VERSION = 2;
const UNTRUSTED_JSON_BYTES = 64 * 1024;
const TRUSTED_JSON_BYTES = 64 * 1024 * 1024;
const HANDSHAKE_TIMEOUT_MS = 5_000;
/**
 * Bulk frames (stream data, large RPC messages such as a flooding session's output) wait while
 * the socket holds this much; interactive ones (control, pings, credit, small RPC messages that
 * nothing before them on their channel waits for) never wait. So a keystroke's echo waits
 * behind at most this plus one bulk frame (a session's output batch is at most 256 KiB).
 * Measured (bench/link-priority.ts, 1 MB/s): the echo waited 4.5 s (4.4 MiB) when every RPC frame
 * went at once, 0.5 s with 256 KiB here, 0.16 s with 64 KiB; stream throughput on loopback did
 * not drop at 64 KiB (the kernel's buffer is behind this one).
 */
const SOCKET_HIGH_WATER = 64 * 1024;
/** A viewer waiting for its share of the queue to drain resumes at this much (whenKeyDrained). */
const KEY_DRAINED_BYTES = 64 * 1024;
/** An RPC frame up to this size may go ahead of the bulk queue (an echoed key, an input request). */
export const INTERACTIVE_RPC_BYTES = 8 * 1024;
const MAX_STREAMS = 64;

/**
 * What each side says about itself first, to a machine it may not know: only what finding it and
 * pairing with it need (and the same as its mDNS TXT, which anyone on the LAN reads). What else
 * a paired machine shows (kernel, load) follows in an `about` CONTROL message once paired
 * (link-manager.ts).
 */
export interface LinkHello {
  v: number;
  id: string;
  /** As received: without control or bidirectional characters, at most PEER_NAME_MAX characters. */
  name: string;
  version: string;
  os: string;
  arch: string;
  /** Where this agent listens for links (0: it does not). */
  port: number;
}

export interface LinkHandlers {
  control(message: Record<string, unknown>): void;
  rpc(message: unknown): void;
  stream(stream: IncomingStream): void;
  closed(reason: string): void;
}

/**
 * A link that could not be made or used. A VosError like every error that reaches a client;
 * most say the peer could not be linked (`unreachable`).
 */
export class LinkError extends VosError {
  constructor(message: string, code: ErrorCode = 'unreachable') {
    super(code, message);
  }
}

/** Completes the TLS handshake's second half: the HELLO exchange. Throws a LinkError. */
export async function establishLink(socket: TLSSocket, own: LinkHello, outbound: boolean): Promise<Link> {
  const cert = socket.getPeerCertificate();
  const der = cert && 'raw' in cert ? cert.raw : undefined;
  if (!der || der.length === 0) {
    socket.destroy();
    throw new LinkError('the peer presented no certificate');
  }
  const peerId = deviceIdOf(der);
  if (peerId === own.id) {
    socket.destroy();
    throw new LinkError('that address is this agent itself', 'invalid_params');
  }
  const decoder = new LinkFrameDecoder({ maxJsonBytes: UNTRUSTED_JSON_BYTES });
  socket.write(encodeLinkFrame({ kind: 'hello', stream: 0, json: own }));
  const { hello, rest } = await new Promise<{ hello: LinkHello; rest: LinkFrame[] }>((resolve, reject) => {
    const fail = (why: string | LinkError): void => {
      cleanup();
      socket.destroy();
      reject(why instanceof LinkError ? why : new LinkError(why));
    };
    const timer = setTimeout(() => fail('the peer did not say hello in time'), HANDSHAKE_TIMEOUT_MS);
    const onData = (chunk: Buffer): void => {
      let frames: LinkFrame[];
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        fail(`bad frame during the handshake: ${(err as Error).message}`);
        return;
      }
      if (frames.length === 0) return;
      const first = frames[0]!;
      if (first.kind !== 'hello') return fail(`the peer sent ${first.kind} before hello`);
      const problem = helloProblem(first.json, peerId);
      if (problem) return fail(problem);
      cleanup();
      resolve({ hello: cleanHello(first.json as LinkHello), rest: frames.slice(1) });
    };
    const onEnd = (): void => fail('the peer closed the connection during the handshake');
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onEnd);
      socket.off('error', onEnd);
    };
    socket.on('data', onData);
    socket.on('close', onEnd);
    socket.on('error', onEnd);
  });
  return new Link(socket, decoder, hello, Buffer.from(der), own.id, outbound, rest);
}

function helloProblem(json: unknown, certId: string): string | LinkError | null {
  if (typeof json !== 'object' || json === null) return 'the hello is not an object';
  const h = json as Partial<LinkHello>;
  if (h.v !== LINK_PROTOCOL_VERSION) {
    return new LinkError(`the peer speaks link protocol ${String(h.v)}, this agent ${LINK_PROTOCOL_VERSION}: update vOS on one side`, 'unsupported_protocol');
  }
  if (!isDeviceId(h.id)) return 'the hello has no valid id';
  if (h.id !== certId) return `the peer claims id ${h.id.slice(0, 12)}… but its certificate is ${certId.slice(0, 12)}…`;
  for (const key of ['name', 'version', 'os', 'arch'] as const) {
    if (typeof h[key] !== 'string' || h[key].length > 128) return `the hello's ${key} is not a short string`;
  }
  if (cleanPeerText(h.name, PEER_NAME_MAX) === '') return 'the hello has an empty name';
  if (typeof h.port !== 'number' || !Number.isInteger(h.port) || h.port < 0 || h.port > 65535) return "the hello's port is not a port";
  return null;
}

/** The checked hello's fields, and no others, as the agent may show them (base/peer-text.ts). */
function cleanHello(h: LinkHello): LinkHello {
  return {
    v: h.v,
    id: h.id,
    name: cleanPeerText(h.name, PEER_NAME_MAX),
    version: cleanPeerText(h.version, PEER_FIELD_MAX),
    os: cleanPeerText(h.os, PEER_FIELD_MAX),
    arch: cleanPeerText(h.arch, PEER_FIELD_MAX),
    port: h.port,
  };
}

interface QueuedData {
  /** Header and payload (the stream's own bytes, not copied). */
  parts: Buffer[];
  bytes: number;
  sent: () => void;
  /** For a queued RPC frame: the order keys it holds (see RpcOrder). */
  keys?: string[];
}

/**
 * How an RPC frame is ordered with the others: it goes ahead of the bulk queue only if no frame
 * queued there holds one of `after`; queued itself, it holds `keys` until it is written. (Frames
 * that must stay in order share a key: the messages of one channel about one session, say.)
 */
export interface RpcOrder {
  keys: string[];
  after: string[];
}

export class Link implements StreamCarrier {
  readonly peerId: string;
  readonly openedAt = Date.now();
  /** The id of the side that dialed: both sides use it to drop the same one of two links. */
  readonly dialerId: string;
  private handlers: LinkHandlers | null = null;
  private trusted = false;
  private closedReason: string | null = null;
  private lastHeard = Date.now();
  private readonly heartbeat: NodeJS.Timeout;
  private readonly outgoing = new Map<number, OutgoingStream>();
  private readonly incoming = new Map<number, IncomingStream>();
  private readonly dataQueue: QueuedData[] = [];
  /** Bytes in dataQueue, and how many queued frames hold each order key. */
  private queuedBytes = 0;
  private readonly queuedKeys = new Map<string, number>();
  /** Bytes of the queued frames holding each order key (a viewer's share of the queue). */
  private readonly queuedKeyBytes = new Map<string, number>();
  /** Callbacks waiting for a key's queued bytes to fall to KEY_DRAINED_BYTES. */
  private readonly keyDrainWaiters = new Map<string, Array<() => void>>();
  private nextStream: number;
  private pingSentAt = 0;
  /** Round-trip time of the last heartbeat, ms. */
  rttMs: number | null = null;

  constructor(
    private readonly socket: TLSSocket,
    private readonly decoder: LinkFrameDecoder,
    readonly hello: LinkHello,
    readonly peerCertDer: Buffer,
    ownId: string,
    readonly outbound: boolean,
    private pending: LinkFrame[],
  ) {
    this.peerId = hello.id;
    this.dialerId = outbound ? ownId : hello.id;
    this.nextStream = outbound ? 1 : 2; // the dialer's streams are odd, the other side's even
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('drain', () => this.flushData());
    socket.on('error', (err) => this.close(`connection error: ${err.message}`));
    socket.on('close', () => this.close('the connection closed'));
    this.heartbeat = setInterval(() => this.beat(), PING_EVERY_MS);
    this.heartbeat.unref();
  }

  /** The peer's IP address ('?' if the socket no longer knows it). */
  get remoteHost(): string {
    return this.socket.remoteAddress ?? '?';
  }

  get remoteAddress(): string {
    const host = this.socket.remoteAddress ?? '?';
    return host.includes(':') ? `[${host}]:${this.socket.remotePort}` : `${host}:${this.socket.remotePort}`;
  }

  /** Milliseconds since the peer last sent anything (pings come every PING_EVERY_MS). */
  get quietMs(): number {
    return Date.now() - this.lastHeard;
  }

  /** Silent for longer than a heartbeat allows: probably dead, not yet timed out. */
  get seemsStale(): boolean {
    return this.quietMs > PING_EVERY_MS * 1.6;
  }

  get isTrusted(): boolean {
    return this.trusted;
  }

  get isClosed(): boolean {
    return this.closedReason !== null;
  }

  /** Starts delivering frames (those that came with the hello first). */
  start(handlers: LinkHandlers): void {
    this.handlers = handlers;
    const early = this.pending;
    this.pending = [];
    for (const f of early) {
      try {
        this.handle(f);
      } catch (err) {
        this.close(`cannot handle a ${f.kind} frame from the peer: ${(err as Error).message}`);
      }
    }
  }

  /** The peer is paired: lift the pre-pairing frame limit. */
  trust(): void {
    this.trusted = true;
    this.decoder.setLimits({ maxJsonBytes: TRUSTED_JSON_BYTES });
  }

  untrust(): void {
    this.trusted = false;
    this.decoder.setLimits({ maxJsonBytes: UNTRUSTED_JSON_BYTES });
    for (const s of [...this.incoming.values()]) s.abort('the peer is no longer paired');
    for (const s of [...this.outgoing.values()]) s.abort('the peer is no longer paired');
  }

  sendControl(message: Record<string, unknown>): void {
    this.sendUrgent({ kind: 'control', stream: 0, json: message });
  }

  /**
   * An RPC message. Without `order` it goes at once; with it, a large one (or one that must stay
   * behind a queued one) joins the bulk queue, so that one flooding session does not hold up
   * another's keystrokes.
   */
  sendRpc(message: unknown, order?: RpcOrder): void {
    if (this.isClosed || !this.socket.writable) return;
    const frame = encodeLinkFrame({ kind: 'rpc', stream: 0, json: message });
    if (!order || (frame.length <= INTERACTIVE_RPC_BYTES && !order.after.some((k) => this.queuedKeys.has(k)))) {
      this.socket.write(frame);
      return;
    }
    for (const k of order.keys) {
      this.queuedKeys.set(k, (this.queuedKeys.get(k) ?? 0) + 1);
      this.queuedKeyBytes.set(k, (this.queuedKeyBytes.get(k) ?? 0) + frame.length);
    }
    this.enqueue({ parts: [frame], bytes: frame.length, sent: () => {}, keys: order.keys });
  }

  /** Bytes the link holds for the peer, queued and in the socket (for viewers' backpressure). */
  bufferedBytes(): number {
    return this.socket.writableLength + this.queuedBytes;
  }

  /**
   * Bytes the link holds of the frames holding `key` (RpcOrder.keys: one channel's, or one
   * channel's about one session), queued, plus what the socket holds (shared, and small: bulk
   * waits while it holds SOCKET_HIGH_WATER). One viewer's share, so that a viewer lags by its
   * own backlog and not by another's.
   */
  bufferedBytesFor(key: string): number {
    return this.socket.writableLength + (this.queuedKeyBytes.get(key) ?? 0);
  }

  /** Calls `cb` once the queue holds at most KEY_DRAINED_BYTES of `key`'s frames (or the link closed). */
  whenKeyDrained(key: string, cb: () => void): void {
    if ((this.queuedKeyBytes.get(key) ?? 0) <= KEY_DRAINED_BYTES || this.isClosed) {
      setImmediate(cb);
      return;
    }
    const waiting = this.keyDrainWaiters.get(key);
    if (waiting) waiting.push(cb);
    else this.keyDrainWaiters.set(key, [cb]);
  }

  /** Calls `cb` once the link holds little (at most what the socket may hold before bulk waits). */
  whenDrained(cb: () => void): void {
    if (this.bufferedBytes() <= SOCKET_HIGH_WATER || this.isClosed) setImmediate(cb);
    else {
      const check = (): void => {
        if (this.bufferedBytes() <= SOCKET_HIGH_WATER || this.isClosed) {
          this.socket.off('drain', check);
          cb();
        }
      };
      this.socket.on('drain', check);
    }
  }

  openStream(meta: unknown): OutgoingStream {
    if (this.isClosed) throw new LinkError(`the link is closed (${this.closedReason})`, 'peer_offline');
    if (this.outgoing.size >= MAX_STREAMS) throw new LinkError('too many streams open on this link', 'unavailable');
    const id = this.nextStream;
    this.nextStream += 2;
    const stream = new OutgoingStream(id, meta, this);
    this.outgoing.set(id, stream);
    this.sendUrgent({ kind: 'open', stream: id, json: meta ?? null });
    return stream;
  }

  close(reason: string): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    clearInterval(this.heartbeat);
    for (const s of [...this.incoming.values()]) s.abort(`the link closed: ${reason}`);
    for (const s of [...this.outgoing.values()]) s.abort(`the link closed: ${reason}`);
    for (const q of this.dataQueue.splice(0)) q.sent();
    this.queuedBytes = 0;
    this.queuedKeys.clear();
    this.queuedKeyBytes.clear();
    const waiters = [...this.keyDrainWaiters.values()].flat();
    this.keyDrainWaiters.clear();
    for (const cb of waiters) setImmediate(cb);
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
    this.handlers?.closed(reason);
  }

  // ---- StreamCarrier

  sendData(stream: number, data: Buffer, sent: () => void): void {
    if (this.isClosed) {
      sent();
      return;
    }
    this.enqueue({ parts: encodeLinkFrameParts({ kind: 'data', stream, data }), bytes: data.length + LINK_FRAME_HEADER_BYTES, sent });
  }

  sendCredit(stream: number, bytes: number): void {
    this.sendUrgent({ kind: 'credit', stream, bytes });
  }

  sendEnd(stream: number): void {
    if (this.isClosed) return;
    // In the data queue, behind the stream's data: END must not overtake it.
    this.enqueue({ parts: encodeLinkFrameParts({ kind: 'end', stream }), bytes: LINK_FRAME_HEADER_BYTES, sent: () => {} });
  }

  sendReset(stream: number, reason: string): void {
    this.sendUrgent({ kind: 'reset', stream, json: { reason: reason.slice(0, 500) } });
  }

  forget(stream: number): void {
    this.outgoing.delete(stream);
    this.incoming.delete(stream);
  }

  // ---- internals

  private wakeKeyWaiters(key: string): void {
    const waiting = this.keyDrainWaiters.get(key);
    if (!waiting) return;
    this.keyDrainWaiters.delete(key);
    for (const cb of waiting) setImmediate(cb);
  }

  private sendUrgent(frame: LinkFrame): void {
    if (this.isClosed || !this.socket.writable) return;
    this.socket.write(encodeLinkFrame(frame));
  }

  private enqueue(q: QueuedData): void {
    this.dataQueue.push(q);
    this.queuedBytes += q.bytes;
    this.flushData();
  }

  private flushData(): void {
    this.socket.cork(); // header and payload go out together
    while (this.dataQueue.length > 0 && this.socket.writableLength < SOCKET_HIGH_WATER && !this.isClosed) {
      const q = this.dataQueue.shift()!;
      this.queuedBytes -= q.bytes;
      for (const k of q.keys ?? []) {
        const n = this.queuedKeys.get(k)! - 1;
        if (n > 0) this.queuedKeys.set(k, n);
        else this.queuedKeys.delete(k);
        const bytes = this.queuedKeyBytes.get(k)! - q.bytes;
        if (n > 0) this.queuedKeyBytes.set(k, bytes);
        else this.queuedKeyBytes.delete(k);
        if (bytes <= KEY_DRAINED_BYTES) this.wakeKeyWaiters(k);
      }
      for (const part of q.parts) this.socket.write(part);
      q.sent();
    }
    this.socket.uncork();
  }

  private receive(chunk: Buffer): void {
    if (this.isClosed) return;
    this.lastHeard = Date.now();
    let frames: LinkFrame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.close(err instanceof LinkFrameError ? `bad frame from the peer: ${err.message}` : String(err));
      return;
    }
    if (!this.handlers) {
      this.pending.push(...frames);
      return;
    }
    for (const f of frames) {
      if (this.isClosed) return;
      try {
        this.handle(f);
      } catch (err) {
        // Whatever a peer sends must not reach the agent as an exception: its link goes instead.
        this.close(`cannot handle a ${f.kind} frame from the peer: ${(err as Error).message}`);
      }
    }
  }

  private handle(f: LinkFrame): void {
    const h = this.handlers!;
    switch (f.kind) {
      case 'hello':
        return this.close('the peer said hello twice');
      case 'ping':
        return this.sendUrgent({ kind: 'pong', stream: 0, nonce: f.nonce });
      case 'pong':
        if (this.pingSentAt) this.rttMs = Date.now() - this.pingSentAt;
        return;
      case 'control':
        if (typeof f.json !== 'object' || f.json === null || Array.isArray(f.json)) return this.close('a control message that is not an object');
        return h.control(f.json as Record<string, unknown>);
      case 'rpc':
        return h.rpc(f.json);
      case 'open': {
        if (!this.trusted) return this.sendReset(f.stream, 'not paired: this machine accepts nothing but a pairing request');
        if (f.stream % 2 === (this.outbound ? 1 : 0) || this.incoming.has(f.stream)) return this.close(`the peer opened stream ${f.stream}, which is not its to open`);
        if (this.incoming.size >= MAX_STREAMS) return this.sendReset(f.stream, 'too many streams open on this link');
        const s = new IncomingStream(f.stream, f.json, this);
        this.incoming.set(f.stream, s);
        return h.stream(s);
      }
      case 'data': {
        const s = this.incoming.get(f.stream);
        if (!s) return; // reset by us, or refused
        if (!s.receive(f.data)) this.close(`the peer sent more on stream ${f.stream} than it was allowed (flow control)`);
        return;
      }
      case 'end':
        return this.incoming.get(f.stream)?.end();
      case 'credit':
        return this.outgoing.get(f.stream)?.grant(f.bytes);
      case 'reset': {
        const reason = cleanPeerText((f.json as { reason?: unknown } | null)?.reason, 500) || 'reset by the peer';
        this.outgoing.get(f.stream)?.abort(reason);
        this.incoming.get(f.stream)?.abort(reason);
        return;
      }
    }
  }

  private beat(): void {
    if (Date.now() - this.lastHeard > DEAD_AFTER_MS) {
      this.close(`no word from the peer for ${DEAD_AFTER_MS / 1000} s`);
      return;
    }
    this.pingSentAt = Date.now();
    this.sendUrgent({ kind: 'ping', stream: 0, nonce: randomBytes(8) });
  }
}
