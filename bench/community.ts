/**
 * Community benchmarks (`npm run bench:community`):
 *
 * - between two simulated hosts (network namespaces joined by veth links; root only): discovery
 *   time (the agent starts → the other lists it), time to notice a peer killed without a
 *   goodbye, and keystroke-to-echo latency through a remote attach against a local attach of
 *   the same session;
 * - on loopback, in this process: bulk throughput of a stream over one link against a raw TLS
 *   socket with the same certificates, in the same run.
 *
 * Environment: BENCH_RUNS (3), BENCH_KEYS (300), BENCH_MIB (512).
 */
import { connect as tlsConnect, createServer, type TLSSocket } from 'node:tls';
import type { ApiClient } from '../src-main/api/client.js';
import type { ApiEvent } from '../src-main/api/protocol.js';
import { deviceIdOf } from '../src-main/base/device-id.js';
import { createSelfSignedIdentity, type SelfSignedIdentity } from '../src-main/base/x509.js';
import { LINK_PROTOCOL_VERSION, establishLink, type Link, type LinkHello } from '../src-main/agent/community/link.js';
import type { IncomingStream } from '../src-main/agent/community/link-streams.js';
import { createSimNetwork, netnsUnavailable, type SimHost, type SimNetwork } from '../test/helpers/netns.js';
import { median, pairAgents, percentile, sleep, startHostAgent, until } from './lib.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const KEYS = Number(process.env.BENCH_KEYS ?? 300);
const MIB = Number(process.env.BENCH_MIB ?? 512);

/** What `client`'s agent says about the machine with this name, or with this id. */
async function peerState(client: ApiClient, nameOrId: string): Promise<{ online: boolean; link: string; paired: boolean } | undefined> {
  return (await client.request('peer.list', {})).find((p) => p.id === nameOrId || p.name === nameOrId);
}

async function discoveryAndDeath(net: SimNetwork): Promise<void> {
  const [h1, h2] = net.hosts as [SimHost, SimHost];
  const a = await startHostAgent(net, h1, 'alpha');
  try {
    const found: number[] = [];
    const gone: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      // A new machine each time (a fresh state directory: a new id).
      const b = await startHostAgent(net, h2, 'beta');
      const id = (await b.client.ready()).id;
      await until('alpha to see beta', async () => (await peerState(a.client, id))?.online, 15_000, 10);
      found.push(Date.now() - b.started);
      const t0 = Date.now();
      await b.stop('SIGKILL');
      await until('alpha to notice beta gone', async () => (await peerState(a.client, id))?.online === false, 30_000, 50);
      gone.push(Date.now() - t0);
    }
    console.log(`discovery: agent started -> listed by the other   median ${median(found)} ms  (runs: ${found.join(', ')}; mDNS probing alone takes ~0.8-1 s)`);
    console.log(`dead peer (SIGKILL, no goodbye) -> listed offline  median ${median(gone)} ms  (runs: ${gone.join(', ')}; goal < 15000)`);
  } finally {
    await a.stop();
  }
}

/** Median and p99 of keystroke-to-echo through `viewer` attached to `ref`. */
async function echoLatency(viewer: ApiClient, ref: string): Promise<{ median: number; p99: number }> {
  const { session } = await viewer.request('session.attach', { id: ref });
  const id = session.id;
  let waiting: { ch: string; resolve: () => void } | null = null;
  const off = viewer.onEvent((e: ApiEvent) => {
    if (e.event === 'session.output' && e.id === id && waiting && e.data.includes(waiting.ch)) {
      const w = waiting;
      waiting = null;
      w.resolve();
    }
  });
  const times: number[] = [];
  try {
    for (let i = 0; i < KEYS; i++) {
      const ch = String.fromCharCode(97 + (i % 26));
      const echoed = new Promise<void>((resolve) => (waiting = { ch, resolve }));
      const t0 = performance.now();
      void viewer.request('session.input', { id, data: ch });
      await echoed;
      times.push(performance.now() - t0);
      if (i % 60 === 59) await viewer.request('session.input', { id, data: '\r' });
    }
  } finally {
    off();
    await viewer.request('session.detach', { id });
  }
  return { median: median(times), p99: percentile(times, 0.99) };
}

async function keystrokes(net: SimNetwork): Promise<void> {
  const [h1, h2] = net.hosts as [SimHost, SimHost];
  const a = await startHostAgent(net, h1, 'alpha');
  const b = await startHostAgent(net, h2, 'beta');
  try {
    await pairAgents(b, a);
    const session = await a.client.request('session.create', { command: 'cat' });
    await sleep(300);
    const local = await echoLatency(a.client, session.id);
    const remote = await echoLatency(b.client, `${session.id}@alpha`);
    console.log(`keystroke-to-echo, ${KEYS} keys (ms; the program is cat on alpha):`);
    console.log(`  local attach (on alpha)           median ${local.median.toFixed(3)}  p99 ${local.p99.toFixed(3)}`);
    console.log(`  remote attach (on beta, via link)  median ${remote.median.toFixed(3)}  p99 ${remote.p99.toFixed(3)}`);
    console.log(`  ratio remote / local: median ${(remote.median / local.median).toFixed(2)}x, p99 ${(remote.p99 / local.p99).toFixed(2)}x`);
  } finally {
    await b.stop();
    await a.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Bulk throughput on loopback

function hello(id: SelfSignedIdentity, name: string): LinkHello {
  return { v: LINK_PROTOCOL_VERSION, id: deviceIdOf(id.certDer), name, version: 'bench', os: 'Linux', arch: process.arch, port: 0 };
}

async function tlsPair(): Promise<{ client: TLSSocket; server: TLSSocket; ids: [SelfSignedIdentity, SelfSignedIdentity]; close: () => void }> {
  const ida = createSelfSignedIdentity('a');
  const idb = createSelfSignedIdentity('b');
  const srv = createServer({ key: idb.keyPem, cert: idb.certPem, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' });
  const accepted = new Promise<TLSSocket>((resolve) => srv.once('secureConnection', resolve));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  const client = tlsConnect({ host: '127.0.0.1', port, key: ida.keyPem, cert: ida.certPem, rejectUnauthorized: false, minVersion: 'TLSv1.3' });
  await new Promise<void>((r) => client.once('secureConnect', () => r()));
  const server = await accepted;
  return { client, server, ids: [ida, idb], close: () => { client.destroy(); server.destroy(); srv.close(); } };
}

async function rawTlsThroughput(bytes: number): Promise<number> {
  const { client, server, close } = await tlsPair();
  try {
    const chunk = Buffer.alloc(256 * 1024, 0x5a);
    let received = 0;
    const done = new Promise<void>((resolve) => server.on('data', (d: Buffer) => (received += d.length) >= bytes && resolve()));
    const t0 = performance.now();
    for (let sent = 0; sent < bytes; sent += chunk.length) {
      if (!client.write(chunk)) await new Promise((r) => client.once('drain', r));
    }
    await done;
    return bytes / ((performance.now() - t0) / 1000);
  } finally {
    close();
  }
}

async function linkThroughput(bytes: number): Promise<number> {
  const { client, server, ids, close } = await tlsPair();
  let a: Link | null = null;
  let b: Link | null = null;
  try {
    [a, b] = await Promise.all([establishLink(client, hello(ids[0], 'a'), true), establishLink(server, hello(ids[1], 'b'), false)]);
    let incoming: IncomingStream | null = null;
    const none = { control: () => {}, rpc: () => {}, stream: () => {}, closed: () => {} };
    a.start(none);
    b.start({ ...none, stream: (s) => (incoming = s) });
    a.trust();
    b.trust();
    const chunk = Buffer.alloc(256 * 1024, 0x5a);
    const out = a.openStream({ bench: true });
    const t0 = performance.now();
    const writing = (async () => {
      for (let sent = 0; sent < bytes; sent += chunk.length) {
        if (!out.write(chunk)) await new Promise((r) => out.once('drain', r));
      }
      out.end();
    })();
    const stream = await until('the stream', () => incoming, 5000, 1);
    let received = 0;
    stream.on('data', (d: Buffer) => (received += d.length));
    await new Promise<void>((resolve, reject) => {
      stream.once('end', resolve);
      stream.once('error', reject);
    });
    await writing;
    if (received !== bytes) throw new Error(`received ${received} of ${bytes} bytes`);
    return bytes / ((performance.now() - t0) / 1000);
  } finally {
    a?.close('bench over');
    b?.close('bench over');
    close();
  }
}

async function throughput(): Promise<void> {
  const bytes = MIB * 1024 * 1024;
  const raw: number[] = [];
  const link: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    raw.push(await rawTlsThroughput(bytes));
    link.push(await linkThroughput(bytes));
  }
  const mbs = (x: number): string => `${(x / 1e6).toFixed(0)} MB/s`;
  console.log(`bulk throughput on loopback, ${MIB} MiB, median of ${RUNS} (sender and receiver in this one process):`);
  console.log(`  raw TLS socket            ${mbs(median(raw))}`);
  console.log(`  stream over a link        ${mbs(median(link))}  (flow-controlled, 256 KiB frames)`);
  console.log(`  ratio link / raw: ${(median(link) / median(raw)).toFixed(2)}`);
}

async function main(): Promise<void> {
  if (process.env.BENCH_ONLY === 'throughput') return throughput();
  const why = netnsUnavailable();
  if (why) {
    console.log(`between hosts: skipped (${why}); run as root for discovery, dead-peer and keystroke figures`);
  } else {
    const net = createSimNetwork(2);
    try {
      await discoveryAndDeath(net);
      await keystrokes(net);
    } finally {
      await net.dispose();
    }
  }
  await throughput();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
