import type { ViewerSink } from '../session/viewer.js';

/**
 * One client of the agent, whatever carries its messages (Unix socket, WebSocket, Electron IPC).
 * A transport turns its bytes into `unknown` values for the dispatcher and implements this to
 * send the replies.
 */
export interface Connection extends ViewerSink {
  /** For logs: the transport and the peer ("unix#3", "web#1"). */
  readonly label: string;
  /** Sends what is queued, then closes. */
  close(): void;
}
