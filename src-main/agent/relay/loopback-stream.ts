/**
 * A link stream to this machine itself: the two ends of a relayed connection can be on the
 * same machine (a session that comes back to the machine that keeps its connection), and the
 * relay then talks to itself through the same stream classes, with the same flow control, as
 * it does over a link.
 */
import { IncomingStream, OutgoingStream, type StreamCarrier } from '../community/link-streams.js';

/** Both ends of one stream; what is written to `out` is read from `incoming`. */
export function loopbackPair(meta: unknown): { out: OutgoingStream; incoming: IncomingStream } {
  let out: OutgoingStream | null = null;
  let incoming: IncomingStream | null = null;
  const writer: StreamCarrier = {
    sendData: (_stream, data, sent) => {
      if (incoming && !incoming.receive(data)) incoming.abort('the sender broke flow control');
      setImmediate(sent);
    },
    sendCredit: () => {},
    sendEnd: () => setImmediate(() => incoming?.end()),
    sendReset: (_stream, reason) => setImmediate(() => incoming?.abort(reason)),
    forget: () => {},
  };
  const reader: StreamCarrier = {
    sendData: () => {},
    sendCredit: (_stream, bytes) => out?.grant(bytes),
    sendEnd: () => {},
    sendReset: (_stream, reason) => setImmediate(() => out?.abort(reason)),
    forget: () => {},
  };
  out = new OutgoingStream(0, meta, writer);
  incoming = new IncomingStream(0, meta, reader);
  return { out, incoming };
}
