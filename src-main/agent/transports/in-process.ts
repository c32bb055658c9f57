/**
 * The local API without a socket, for a client in the agent's own process (the Electron main
 * process bridging its renderer). Messages pass as values; the receiver sees the same protocol as
 * over a socket.
 */
import type { AgentMessage } from '../../api/protocol.js';
import type { ApiDispatcher } from '../api-dispatcher.js';
import type { Connection } from './connection.js';

export interface InProcessLink {
  /** A message from the client to the agent. */
  receive(message: unknown): void;
  /** The client is gone. */
  close(): void;
}

let counter = 0; // labels only

export function connectInProcess(
  dispatcher: ApiDispatcher,
  deliver: (message: AgentMessage) => void,
  label = 'local',
): InProcessLink {
  let open = true;
  const conn: Connection = {
    label: `${label}#${++counter}`,
    send: (message) => {
      if (open) deliver(message);
    },
    bufferedBytes: () => 0,
    whenDrained: (cb) => setImmediate(cb),
    close: () => {
      open = false;
    },
  };
  const handle = dispatcher.open(conn);
  return {
    receive: (message) => handle.receive(message),
    close: () => {
      open = false;
      handle.closed();
    },
  };
}
