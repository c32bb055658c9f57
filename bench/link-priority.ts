/**
 * Keystrokes beside a flood on a slow link (`npm run bench:link-priority`; issue 15 item 8).
 *
 * Two ends in this process joined by a throttled duplex (BENCH_RATE bytes/s each way, 64 KiB
 * "on the wire" like a small kernel buffer). Session 1 floods (output batches of 64 KiB, produced
 * as a session does: while the link holds less than a viewer's 4 MiB high-water mark); session 2
 * echoes each key. Measured: key-to-echo latency of session 2, and what it is in bytes of
 * transfer at the link's rate. Three multiplexers over the same throttle:
 *
 * - the link as it was: every RPC frame written to the socket at once;
 * - the link's writer now: large frames (and those behind them on their channel and session)
 *   wait in the bulk queue while the socket holds 256 KiB; small ones go ahead;
 * - Node's http2 (h2c, no TLS) with its own per-stream flow control: the flood one stream, the
 *   keys another, the same producer rule (write while the stream's buffer is small).
 *
 * Environment: BENCH_RATE (1000000), BENCH_KEYS (10).
 */
import { connect as h2connect, createServer as h2server, type ClientHttp2Stream, type ServerHttp2Stream } from 'node:http2';
import { TLSSocket, connect as tlsConnect } from 'node:tls';
import { deviceIdOf } from '../src-main/base/device-id.js';
import { createSelfSignedIdentity, type SelfSignedIdentity } from '../src-main/base/x509.js';
import { LINK_PROTOCOL_VERSION, establishLink, type Link, type LinkHello } from '../src-main/agent/community/link.js';
import { rpcOrder } from '../src-main/agent/community/channels.js';
import { median, percentile, sleep } from './lib.js';
import { throttledPair } from '../test/helpers/throttle.js';

const RATE = Number(process.env.BENCH_RATE ?? 1_000_000);
const KEYS = Number(process.env.BENCH_KEYS ?? 10);
const VIEWER_HIGH_WATER = 4 * 1024 * 1024;
const BATCH = 'x'.repeat(64 * 1024);

function hello(id: SelfSignedIdentity, name: string): LinkHello {
  return { v: LINK_PROTOCOL_VERSION, id: deviceIdOf(id.certDer), name, version: 'bench', os: 'Linux', arch: process.arch, port: 0 };
}

function report(name: string, ms: number[]): void {
  const kib = (t: number): string => `${((t / 1000) * RATE / 1024).toFixed(0)} KiB`;
  console.log(`  ${name.padEnd(34)} echo median ${median(ms).toFixed(0)} ms (${kib(median(ms))}), p90 ${percentile(ms, 0.9).toFixed(0)} ms (${kib(percentile(ms, 0.9))})`);
}

/** Keystroke latency of session 2 over a link while session 1 floods; `ordered`: the bulk queue in use. */
async function overLink(ordered: boolean): Promise<number[]> {
  const { x, y, stop } = throttledPair(RATE);
  const ida = createSelfSignedIdentity('a');
  const idb = createSelfSignedIdentity('b');
  const opts = { minVersion: 'TLSv1.3' as const, rejectUnauthorized: false };
  const server = new TLSSocket(y, { isServer: true, key: idb.keyPem, cert: idb.certPem, requestCert: true, ...opts });
  const secure = new Promise<void>((r) => server.once('secure', () => r()));
  const client = tlsConnect({ socket: x, key: ida.keyPem, cert: ida.certPem, ...opts });
  await Promise.all([new Promise<void>((r) => client.once('secureConnect', () => r())), secure]);
  const [a, b]: [Link, Link] = await Promise.all([establishLink(client, hello(ida, 'a'), true), establishLink(server, hello(idb, 'b'), false)]);
  let echoed: (() => void) | null = null;
  const none = { control: () => {}, stream: () => {}, closed: () => {} };
  // b runs the sessions: a key on channel 2 comes back at once as session 2's output.
  b.start({
    ...none,
    rpc: (m) => {
      const { ch, m: msg } = m as { ch: number; m: { data: string } };
      if (ch === 2) b.sendRpc({ ch: 2, d: 'a', m: { t: 'event', event: 'session.output', id: 's2', data: msg.data } }, ordered ? rpcOrder('a2', 's2') : undefined);
    },
  });
  a.start({ ...none, rpc: (m) => void ((m as { ch: number }).ch === 2 && echoed?.()) });
  a.trust();
  b.trust();
  let flooding = true;
  const flood = (async () => {
    while (flooding) {
      if (b.bufferedBytes() > VIEWER_HIGH_WATER) await new Promise<void>((r) => b.whenDrained(r));
      else b.sendRpc({ ch: 1, d: 'a', m: { t: 'event', event: 'session.output', id: 's1', data: BATCH } }, ordered ? rpcOrder('a1', 's1') : undefined);
      await new Promise((r) => setImmediate(r));
    }
  })();
  try {
    await sleep(3000); // the flood fills whatever it can
    const ms: number[] = [];
    for (let i = 0; i < KEYS; i++) {
      const t0 = performance.now();
      await new Promise<void>((resolve) => {
        echoed = resolve;
        a.sendRpc({ ch: 2, d: 'c', m: { t: 'req', id: i, method: 'session.input', params: { id: 's2', data: 'k' } } }, ordered ? rpcOrder('c2', null) : undefined);
      });
      ms.push(performance.now() - t0);
      await sleep(50);
    }
    return ms;
  } finally {
    flooding = false;
    await flood;
    a.close('bench over');
    b.close('bench over');
    stop();
  }
}

/** The same over Node's http2 (h2c): the flood on one stream, keys echoed on another. */
async function overHttp2(): Promise<number[]> {
  const { x, y, stop } = throttledPair(RATE);
  const srv = h2server();
  let flooding = true;
  srv.on('stream', (stream: ServerHttp2Stream, headers) => {
    stream.respond({ ':status': 200 });
    if (headers[':path'] === '/flood') {
      void (async () => {
        while (flooding && !stream.destroyed) {
          if (stream.writableLength > VIEWER_HIGH_WATER) await new Promise((r) => stream.once('drain', r));
          else stream.write(BATCH);
          await new Promise((r) => setImmediate(r));
        }
      })();
    } else stream.on('data', (d: Buffer) => stream.write(d)); // the echo
  });
  srv.emit('connection', y);
  const session = h2connect('http://bench', { createConnection: () => x });
  const floodStream = session.request({ ':path': '/flood', ':method': 'POST' });
  floodStream.on('data', () => {});
  const keys: ClientHttp2Stream = session.request({ ':path': '/keys', ':method': 'POST' });
  let echoed: (() => void) | null = null;
  keys.on('data', () => echoed?.());
  try {
    await sleep(3000);
    const ms: number[] = [];
    for (let i = 0; i < KEYS; i++) {
      const t0 = performance.now();
      await new Promise<void>((resolve) => {
        echoed = resolve;
        keys.write('k');
      });
      ms.push(performance.now() - t0);
      await sleep(50);
    }
    return ms;
  } finally {
    flooding = false;
    session.destroy();
    srv.close();
    stop();
  }
}

async function main(): Promise<void> {
  console.log(`keystroke echo of session 2 while session 1 floods, link at ${(RATE / 1e6).toFixed(2)} MB/s each way, ${KEYS} keys:`);
  report('link, every RPC frame at once (before)', await overLink(false));
  report('link, bulk queue (now)', await overLink(true));
  report('node http2 (h2c), per-stream windows', await overHttp2());
  process.exit(0);
}

void main();
