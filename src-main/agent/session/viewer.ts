import type { AgentMessage } from '../../api/protocol.js';

/**
 * Whoever receives a session's output: one client connection. The session only needs to push
 * messages and to know whether the client keeps up.
 */
export interface ViewerSink {
  send(message: AgentMessage): void;
  /** Bytes queued for this client that it has not taken yet. */
  bufferedBytes(): number;
  /** Calls `cb` once, as soon as the queue is (nearly) empty; at once if it already is. */
  whenDrained(cb: () => void): void;
}

/** Above this many queued bytes a viewer counts as lagging: it gets no live output until it drains. */
export const VIEWER_HIGH_WATER_BYTES = 4 * 1024 * 1024;
