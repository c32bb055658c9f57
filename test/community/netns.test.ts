/**
 * The simulated LAN of test/helpers/netns.ts, checked with real processes: TCP between hosts, a pulled
 * cable, multicast (and what blockMulticast really blocks), and that dispose() leaves nothing behind.
 * Needs root and `ip netns`; otherwise every test is skipped with the reason printed.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/agent-process.js';
import { createSimNetwork, netnsUnavailable, type SimHost, type SimNetwork } from '../helpers/netns.js';

const reason = netnsUnavailable();
if (reason) console.log(`[test/community/netns.test.ts] skipped: ${reason}`);

const NODE = process.execPath;
const TCP_PORT = 7401;
const GROUP = '224.0.0.251'; // the mDNS group, but not the mDNS port
const MC_PORT = 5399;

const SERVER = `
const net = require('net');
const [addr, port] = process.argv.slice(1);
net.createServer((c) => { console.log('conn ' + c.remoteAddress); c.end('hello ' + c.remoteAddress + '\\n'); })
  .listen(+port, addr, () => console.log('listening ' + process.pid));`;

const CLIENT = `
const net = require('net');
const [addr, port, ms] = process.argv.slice(1);
const t = setTimeout(() => { console.log('TIMEOUT'); process.exit(3); }, +ms);
const s = net.connect({ host: addr, port: +port });
let data = '';
s.on('data', (d) => (data += d));
s.on('end', () => { console.log('OK ' + data.trim()); process.exit(0); });
s.on('error', (e) => { console.log('ERROR ' + e.code); process.exit(2); });`;

/** Joins GROUP (optionally on one interface) and prints every datagram as "msg FROM TEXT". */
const RECEIVER = `
const dgram = require('dgram');
const [group, port, iface] = process.argv.slice(1);
const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
s.on('message', (m, r) => console.log('msg ' + r.address + ' ' + m));
s.bind(+port, () => {
  try { iface ? s.addMembership(group, iface) : s.addMembership(group); }
  catch (e) { console.log('join-error ' + e.code); process.exit(4); }
  console.log('ready');
});`;

/** Sends COUNT datagrams (0: forever) every INTERVAL ms, printing "sent" or "send-error CODE" each time. */
const SENDER = `
const dgram = require('dgram');
const [group, port, label, count, interval, iface] = process.argv.slice(1);
const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
let n = 0;
s.bind(0, () => {
  if (iface) s.setMulticastInterface(iface);
  const tick = () => {
    n++;
    s.send(label, +port, group, (e) => {
      console.log(e ? 'send-error ' + e.code : 'sent');
      if (+count > 0 && n >= +count) process.exit(0);
    });
  };
  tick();
  setInterval(tick, +interval);
});`;

interface Proc {
  child: ChildProcess;
  out: () => string;
  lines: (prefix: string) => string[];
  exited: Promise<number | null>;
}

function start(net: SimNetwork, host: SimHost, script: string, args: Array<string | number>): Proc {
  const child = net.spawn(host, NODE, ['-e', script, ...args.map(String)]);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, out: () => out, lines: (p) => out.split('\n').filter((l) => l.startsWith(p)), exited };
}

/** Runs a short script to completion (killed after `limitMs`), returns its exit code and output. */
async function run(net: SimNetwork, host: SimHost, script: string, args: Array<string | number>, limitMs = 5_000) {
  const p = start(net, host, script, args);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), limitMs);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, out: p.out().trim() };
}

const connect = (net: SimNetwork, from: SimHost, to: SimHost, timeoutMs: number) =>
  run(net, from, CLIENT, [to.address, TCP_PORT, timeoutMs], timeoutMs + 3_000);

/** Gone = no such process, or a zombie nobody has reaped yet. */
function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

const ipNetnsList = (): string => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });

describe('simulated hosts in network namespaces', () => {
  let net: SimNetwork;
  let server: Proc;
  let h1: SimHost, h2: SimHost, h3: SimHost;

  beforeAll(async () => {
    if (reason) return;
    net = createSimNetwork(3);
    [h1, h2, h3] = net.hosts as [SimHost, SimHost, SimHost];
    console.log(`3 hosts ready in ${net.setupMs} ms: ${net.hosts.map((h) => `${h.name}=${h.address} (${h.ns}/${h.iface})`).join(', ')}`);
    server = start(net, h1, SERVER, [h1.address, TCP_PORT]);
    await waitFor('the TCP server on host1', () => server.out().includes('listening'), 5_000);
  });
  afterAll(async () => {
    await net?.dispose();
  });

  it.skipIf(reason)('runs programs in place: the spawned pid is the program, and host1 serves host2 and host3 over TCP', async () => {
    // `ip netns exec` execs the program itself: the pid it reports is the ChildProcess pid.
    expect(server.lines('listening')[0]).toBe(`listening ${server.child.pid}`);
    expect(readFileSync(`/proc/${server.child.pid}/comm`, 'utf8').trim()).toBe('node');

    const t0 = Date.now();
    const [r2, r3] = await Promise.all([connect(net, h2, h1, 2_000), connect(net, h3, h1, 2_000)]);
    console.log(`host2/host3 -> host1 connected in ${Date.now() - t0} ms (including node start-up)`);
    // Each host reaches host1 from its own address: the traffic really crossed the simulated links.
    expect(r2).toEqual({ code: 0, out: `OK hello ${h2.address}` });
    expect(r3).toEqual({ code: 0, out: `OK hello ${h3.address}` });
    expect(server.lines('conn').sort()).toEqual([`conn ${h2.address}`, `conn ${h3.address}`]);
    // A host namespace holds only lo and its end of the link.
    expect(net.exec(h1, 'ip', ['-o', 'link', 'show']).split('\n').filter(Boolean).length).toBe(2); // lo + vh1
  });

  it.skipIf(reason)('cut() isolates one host until restore()', async () => {
    let t = Date.now();
    net.cut(h2);
    console.log(`cut(host2) took ${Date.now() - t} ms; host2's link: ${net.exec(h2, 'ip', ['-br', 'link', 'show', h2.iface]).trim()}`);
    t = Date.now();
    const during = await connect(net, h2, h1, 2_000);
    console.log(`host2 -> host1 while cut: "${during.out}" after ${Date.now() - t} ms`);
    expect(during.code).not.toBe(0);
    expect(during.out).toMatch(/^(TIMEOUT|ERROR (EHOSTUNREACH|ENETUNREACH))$/);
    // Only host2 is cut off.
    expect(await connect(net, h3, h1, 2_000)).toEqual({ code: 0, out: `OK hello ${h3.address}` });

    t = Date.now();
    net.restore(h2);
    const restoreMs = Date.now() - t;
    const attempts: string[] = [];
    const after = await waitFor(
      'host2 to reach host1 again',
      async () => {
        const a = Date.now();
        const r = await connect(net, h2, h1, 1_500);
        attempts.push(`${r.out} (${Date.now() - a} ms)`);
        return r.code === 0 ? r : null;
      },
      10_000,
    );
    console.log(`restore(host2) took ${restoreMs} ms; host2 -> host1 works again ${Date.now() - t} ms after restore; attempts: ${attempts.join(', ')}`);
    expect(after.out).toBe(`OK hello ${h2.address}`);
  });

  it.skipIf(reason)('carries multicast between hosts; blockMulticast() stops it on one host, unicast still works', async () => {
    const rx2 = start(net, h2, RECEIVER, [GROUP, MC_PORT]);
    const rx3 = start(net, h3, RECEIVER, [GROUP, MC_PORT]);
    await waitFor('the receivers to join', () => rx2.out().includes('ready') && rx3.out().includes('ready'), 5_000);
    const tx1 = start(net, h1, SENDER, [GROUP, MC_PORT, 'from1', 0, 50]);
    const from1 = (p: Proc) => p.lines(`msg ${h1.address} from1`).length;
    await waitFor('host1 multicast on host2 and host3', () => from1(rx2) > 0 && from1(rx3) > 0, 5_000);

    net.blockMulticast(h2);
    // Let datagrams already in flight land, then host3 keeps receiving while host2 hears nothing more,
    // even on this socket that joined the group before the block (the bridge no longer floods to it).
    const base3 = from1(rx3);
    await waitFor('in-flight datagrams', () => from1(rx3) >= base3 + 2, 5_000);
    const frozen2 = from1(rx2);
    const mark3 = from1(rx3);
    await waitFor('more multicast on host3', () => from1(rx3) >= mark3 + 6, 5_000);
    expect(from1(rx2)).toBe(frozen2);

    // Sockets that do not pin an interface (bonjour-service's default) fail at once on host2.
    const send2 = await run(net, h2, SENDER, [GROUP, MC_PORT, 'blocked2', 1, 50]);
    expect(send2.out).toBe('send-error ENETUNREACH');
    const join2 = await run(net, h2, RECEIVER, [GROUP, MC_PORT + 1]);
    expect(join2).toEqual({ code: 4, out: 'join-error ENODEV' });
    // What the block cannot stop: a socket pinned to host2's interface (IP_MULTICAST_IF) still sends,
    // because for 224.0.0.x with a pinned interface the kernel bypasses the routing table.
    const pinned = await run(net, h2, SENDER, [GROUP, MC_PORT, 'pinned2', 3, 50, h2.address]);
    expect(pinned.code).toBe(0);
    await waitFor('host2 pinned multicast on host3', () => rx3.lines(`msg ${h2.address} pinned2`).length > 0, 5_000);
    // Unicast is untouched.
    expect(await connect(net, h2, h1, 2_000)).toEqual({ code: 0, out: `OK hello ${h2.address}` });

    net.allowMulticast(h2);
    await waitFor('host1 multicast on host2 again', () => from1(rx2) > frozen2, 5_000);
    const tx2 = start(net, h2, SENDER, [GROUP, MC_PORT, 'again2', 0, 50]);
    await waitFor('host2 multicast on host3 again', () => rx3.lines(`msg ${h2.address} again2`).length > 0, 5_000);
    expect(tx2.lines('send-error')).toEqual([]);
    for (const p of [rx2, rx3, tx1, tx2]) p.child.kill('SIGKILL');
  });

  it.skipIf(reason)('has no IPv6 on the links by default; with { ipv6: true } waits until DAD is over', async () => {
    expect(net.exec(h1, 'ip', ['-6', '-o', 'addr', 'show', 'dev', h1.iface])).toBe('');
    expect(net.exec(h1, 'ip', ['-6', '-o', 'addr', 'show', 'dev', 'lo'])).toContain('::1/128');
    const v6 = createSimNetwork(2, { ipv6: true });
    try {
      console.log(`2 hosts with IPv6 ready in ${v6.setupMs} ms (waiting for DAD)`);
      for (const h of v6.hosts) {
        const addrs = v6.exec(h, 'ip', ['-6', '-o', 'addr', 'show', 'dev', h.iface]);
        expect(addrs).toMatch(/inet6 fe80::/);
        expect(addrs).not.toMatch(/tentative|dadfailed/);
      }
      // Link-local IPv6 works between the hosts at once.
      const [a, b] = v6.hosts as [SimHost, SimHost];
      const ll = /inet6 (fe80::[0-9a-f:]+)\//.exec(v6.exec(a, 'ip', ['-6', '-o', 'addr', 'show', 'dev', a.iface]))![1]!;
      const srv = start(v6, a, SERVER, [`${ll}%${a.iface}`, TCP_PORT]);
      await waitFor('the IPv6 server', () => srv.out().includes('listening'), 5_000);
      const r = await run(v6, b, CLIENT, [`${ll}%${b.iface}`, TCP_PORT, 2_000]);
      expect(r.out).toMatch(/^OK hello fe80::/);
    } finally {
      await v6.dispose();
    }
  });

  it.skipIf(reason)('dispose() kills every process and deletes every namespace, even if called twice', async () => {
    const t0 = Date.now();
    const net2 = createSimNetwork(2);
    const names = [net2.bridgeNs, ...net2.hosts.map((h) => h.ns)];
    expect(ipNetnsList()).toContain(net2.hosts[1]!.ns);
    const [a, b] = net2.hosts as [SimHost, SimHost];
    const idle = start(net2, a, 'setInterval(() => {}, 1000); console.log("up")', []);
    // A grandchild: the shell is what spawn() tracks, `sleep` is only found through `ip netns pids`.
    const shell = net2.spawn(b, 'sh', ['-c', 'sleep 300 & echo $!; wait']);
    let shellOut = '';
    shell.stdout!.on('data', (d: Buffer) => (shellOut += d.toString()));
    await waitFor('the processes to start', () => idle.out().includes('up') && /^\d+\n/.test(shellOut), 5_000);
    const grandchild = Number(shellOut.trim());
    const pids = [idle.child.pid!, shell.pid!, grandchild];
    expect(pids.every((p) => !gone(p))).toBe(true);
    const shellExit = new Promise((resolve) => shell.once('exit', (_code, signal) => resolve(signal)));

    const t1 = Date.now();
    await net2.dispose();
    console.log(`2-host network: created and started processes in ${t1 - t0} ms, disposed in ${Date.now() - t1} ms`);
    await net2.dispose(); // idempotent
    expect(await shellExit).toBe('SIGKILL');
    await waitFor('every process to be gone', () => pids.every(gone), 3_000);
    const list = ipNetnsList();
    for (const ns of names) expect(list).not.toContain(ns);
    expect(() => net2.exec(a, 'true', [])).toThrow(/after dispose/);
    // Nothing was ever created in the machine's own namespace.
    expect(execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })).not.toMatch(/\b[vb]h\d+[@:]/);
  });
});
