/**
 * Relayed connections (`npm run bench:relay`; needs root: the three machines are network
 * namespaces joined by veth links). A client in a session on alpha talks to a server outside
 * any session on alpha; the same client is measured before the move (its connection direct)
 * and after moving to beta (the connection kept on alpha, its bytes relayed over the agents'
 * link), in the same run:
 *   - round trip of one byte (p50, p99 of BENCH_PINGS);
 *   - throughput of BENCH_MIB MiB from the server, against the same transfer by a plain client
 *     on beta straight to the server (the link's own TCP throughput);
 *   - downtime of the move with 0, 1 and 10 connections open;
 *   - the same round trip and throughput once the session moved on to gamma (beta cuts itself
 *     out: gamma relays straight with alpha) and once it came back to alpha (its connection
 *     then spliced inside alpha's agent to the socket alpha keeps).
 *
 * Environment: BENCH_RUNS (3), BENCH_PINGS (2000), BENCH_MIB (256).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MigrationResult } from '../src-main/api/protocol.js';
import { createSimNetwork, netnsUnavailable, type SimNetwork } from '../test/helpers/netns.js';
import { median, pairAgents, startHostAgent, until, type BenchAgent } from './lib.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const PINGS = Number(process.env.BENCH_PINGS ?? 2000);
const MIB = Number(process.env.BENCH_MIB ?? 256);
const PORT = 47321;

/** Per connection: "p" is answered with one byte; "g" + 8-byte length with that many bytes. */
const SERVER = `
import socket, struct, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", ${PORT})); s.listen(64)
print("listening", flush=True)
blob = b"x" * (1 << 20)
def serve(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            k = c.recv(1)
            if not k: return
            if k == b"p": c.sendall(b"p")
            elif k == b"g":
                (n,) = struct.unpack(">Q", c.recv(8, socket.MSG_WAITALL))
                while n > 0:
                    m = min(n, len(blob)); c.sendall(blob[:m]); n -= m
    except OSError:
        pass
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
`;

/** Opens N connections; then per line on stdin: "rtt K" or "get MIB"; prints results. */
const CLIENT = `
import socket, struct, sys, time
host, n = sys.argv[1], int(sys.argv[2])
conns = [socket.create_connection((host, ${PORT})) for _ in range(max(n, 1))]
for c in conns: c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
c = conns[0]
print("ready", n, flush=True)
for line in sys.stdin:
    w = line.split()
    if not w: continue
    if w[0] == "rtt":
        ts = []
        for _ in range(int(w[1])):
            t = time.perf_counter(); c.sendall(b"p"); c.recv(1); ts.append(time.perf_counter() - t)
        ts.sort()
        print("rtt p50=%.1f p99=%.1f us" % (ts[len(ts) // 2] * 1e6, ts[int(len(ts) * 0.99)] * 1e6), flush=True)
    elif w[0] == "get":
        want = int(w[1]) << 20; got = 0; t = time.perf_counter()
        c.sendall(b"g" + struct.pack(">Q", want))
        while got < want:
            d = c.recv(1 << 20)
            if not d: break
            got += len(d)
        print("tput %.1f MB/s" % (got / (time.perf_counter() - t) / 1e6), flush=True)
`;

async function ask(agent: BenchAgent, id: string, line: string, pattern: string): Promise<string> {
  const before = (await agent.client.request('session.screen', { id })).lines.join('\n');
  await agent.client.request('session.input', { id, data: `${line}\r` });
  const text = await until(
    `"${line}" answered`,
    async () => {
      const now = (await agent.client.request('session.screen', { id })).lines.join('\n');
      return now !== before && new RegExp(pattern).test(now.slice(now.lastIndexOf(line))) ? now : null;
    },
    600_000,
    50,
  );
  return new RegExp(pattern).exec(text.slice(text.lastIndexOf(line)))![0];
}

async function main(): Promise<void> {
  const why = netnsUnavailable();
  if (why) {
    console.log(`skipped: ${why} (the two machines are network namespaces; run as root)`);
    return;
  }
  const dir = mkdtempSync('/tmp/vos-bench-relay-');
  writeFileSync(join(dir, 'server.py'), SERVER);
  writeFileSync(join(dir, 'client.py'), CLIENT);
  const net: SimNetwork = createSimNetwork(3);
  let a: BenchAgent | null = null;
  let b: BenchAgent | null = null;
  let c: BenchAgent | null = null;
  try {
    const server = net.spawn(net.hosts[0]!, 'python3', [join(dir, 'server.py')]);
    let up = '';
    server.stdout!.on('data', (d: Buffer) => (up += d.toString()));
    await until('the server', () => up.includes('listening'), 10_000);
    a = await startHostAgent(net, net.hosts[0]!, 'alpha');
    b = await startHostAgent(net, net.hosts[1]!, 'beta');
    c = await startHostAgent(net, net.hosts[2]!, 'gamma');
    await pairAgents(a, b);
    await pairAgents(b, c);
    await pairAgents(c, a);
    const address = net.hosts[0]!.address;

    // The link's own: a plain client on beta, straight to the server.
    const plain: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const out = net.exec(net.hosts[1]!, 'python3', ['-c', CLIENT.replace('for line in sys.stdin:', `for line in ["get ${MIB}"]:`), address, '1'], { timeoutMs: 120_000 });
      plain.push(Number(/tput ([\d.]+)/.exec(out)![1]));
    }

    console.log(`relayed connections between network namespaces joined by veth links, median of ${RUNS}`);
    console.log('                          direct (on alpha)    relayed (on beta)    relayed / direct');
    // Direct on alpha, relayed on beta, straight on gamma, back on alpha.
    const rows: { p50: number[]; p99: number[]; tput: number[] }[] = [0, 1, 2, 3].map(() => ({ p50: [], p99: [], tput: [] }));
    const measure = async (agent: BenchAgent, id: string, row: number): Promise<void> => {
      const m = /p50=([\d.]+) p99=([\d.]+)/.exec(await ask(agent, id, `rtt ${PINGS}`, 'rtt p50=([\\d.]+) p99=([\\d.]+) us'))!;
      rows[row]!.p50.push(Number(m[1]));
      rows[row]!.p99.push(Number(m[2]));
      rows[row]!.tput.push(Number(/([\d.]+) MB/.exec(await ask(agent, id, `get ${MIB}`, 'tput ([\\d.]+) MB/s'))![1]));
    };
    /** Moves session `id` from `from` to `to`; its id there, once its connection goes straight to alpha. */
    const moveOn = async (from: BenchAgent, id: string, to: BenchAgent): Promise<string> => {
      const r: MigrationResult = await from.client.request('session.migrate', { id, peer: to.name });
      const there = r.session.id.slice(0, r.session.id.indexOf('@'));
      await until(`${to.name} to relay straight with alpha`, async () => {
        const s = (await to.client.request('session.list', {})).find((x) => x.id === there);
        return s?.relayed?.length === 1 && s.relayed[0]!.via.name === 'alpha';
      }, 30_000);
      return there;
    };
    const downtime: Record<number, number[]> = { 0: [], 1: [], 10: [] };
    for (let run = 0; run < RUNS; run++) {
      for (const n of [0, 1, 10]) {
        const s = await a.client.request('session.create', { command: 'python3', args: [join(dir, 'client.py'), address, String(n)] });
        await a.client.request('session.wait', { id: s.id, pattern: '^ready', timeoutMs: 30_000 });
        if (n === 1) await measure(a, s.id, 0);
        const r: MigrationResult = await a.client.request('session.migrate', { id: s.id, peer: 'beta' });
        downtime[n]!.push(r.downtimeMs);
        const there = r.session.id.slice(0, r.session.id.indexOf('@'));
        if (n !== 1) {
          await b.client.request('session.remove', { id: there, force: true });
          continue;
        }
        await measure(b, there, 1);
        const third = await moveOn(b, there, c);
        await measure(c, third, 2);
        const home = await moveOn(c, third, a);
        await measure(a, home, 3);
        await a.client.request('session.remove', { id: home, force: true });
      }
    }
    const line = (what: string, d: number, r: number, unit: string): void =>
      console.log(`${what.padEnd(26)}${`${d.toFixed(1)} ${unit}`.padStart(17)}${`${r.toFixed(1)} ${unit}`.padStart(21)}${`${(r / d).toFixed(2)}x`.padStart(20)}`);
    line('round trip, p50', median(rows[0]!.p50), median(rows[1]!.p50), 'us');
    line('round trip, p99', median(rows[0]!.p99), median(rows[1]!.p99), 'us');
    line(`${MIB} MiB from the server`, median(rows[0]!.tput), median(rows[1]!.tput), 'MB/s');
    console.log(`the link's own TCP throughput (a plain client on beta): ${median(plain).toFixed(1)} MB/s; relayed / link: ${(median(rows[1]!.tput) / median(plain)).toFixed(2)}`);
    console.log(`downtime of the move: ${[0, 1, 10].map((n) => `${n} connection${n === 1 ? '' : 's'} ${median(downtime[n]!)} ms`).join(', ')}`);
    console.log('\nmoved on from beta to gamma, then back to alpha            p50        p99     throughput   p50 / direct');
    for (const [what, row] of [['on gamma (straight with alpha, beta cut out)', 2], ['back on alpha (spliced in its agent)', 3]] as const) {
      const r = rows[row]!;
      console.log(
        `${what.padEnd(52)}${`${median(r.p50).toFixed(1)} us`.padStart(10)}${`${median(r.p99).toFixed(1)} us`.padStart(11)}${`${median(r.tput).toFixed(1)} MB/s`.padStart(15)}${`${(median(r.p50) / median(rows[0]!.p50)).toFixed(2)}x`.padStart(15)}`,
      );
    }
  } finally {
    if (c) await c.stop();
    if (b) await b.stop();
    if (a) await a.stop();
    await net.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
