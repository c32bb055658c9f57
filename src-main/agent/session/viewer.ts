import type { AgentMessage } from '../../api/protocol.js';

/**
 * Whoever receives a session's output: one client connection. The session only needs to push
 * messages and to know whether the client keeps up.
 */
export interface ViewerSink {
  send(message: AgentMessage): void;
  /**
   * Bytes queued for this client that it has not taken yet; with `session`, those of its messages
   * about that session where the transport can tell them apart (a peer's channel on a link).
   */
  bufferedBytes(session?: string): number;
  /** Calls `cb` once, as soon as the queue (of `session`'s messages, as above) is (nearly) empty; at once if it already is. */
  whenDrained(cb: () => void, session?: string): void;
  /** Queued bytes above which it counts as lagging (default VIEWER_HIGH_WATER_BYTES). */
  readonly outputHighWater?: number;
}

/** Above this many queued bytes a viewer counts as lagging: it gets no live output until it drains. */
export const VIEWER_HIGH_WATER_BYTES = 4 * 1024 * 1024;
