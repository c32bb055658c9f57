/**
 * Connections follow the move: a session's connection to a server outside it stays open on
 * the machine it left (the anchor), and its bytes reach the program on the new machine through
 * both agents — in order, nothing lost or repeated, both ways, while the move happens, and while
 * the link between the agents is lost for a few seconds. The source agent's end, or a link lost
 * for longer than the relay waits, ends them as a network failure would: both the program and
 * the server see a reset, nothing hangs. Root only (network namespaces), as the other migration tests; the
 * agents run as an ordinary user in one of them.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MigrationResult, SessionInfo } from '../../src-main/api/protocol.js';
import { UNPRIVILEGED, waitFor } from '../helpers/agent-process.js';
import { FAST_LINKS, SimLab, multiHostSkipReason, pairAgents, type HostAgent } from '../helpers/community.js';

const unavailable = multiHostSkipReason('test/community/migration-relay.test.ts');

/** Debian's openssh-server (.ci/run installs it); without it the ssh test says so and skips. */
function hasSshd(): boolean {
  if (existsSync('/usr/sbin/sshd')) return true;
  console.log('test/community/migration-relay.test.ts: no /usr/sbin/sshd (apt-get install openssh-server): the ssh test is skipped');
  return false;
}

/**
 * The server, outside every session: sends CHUNKS pieces of 64 KiB (each the SHA-256 of its
 * number, repeated) at a pace, then shuts down writing; meanwhile reads back everything the
 * client echoes and, at its end, says what it sent and what it got (bytes and SHA-256).
 */
const SERVER = `
import hashlib, socket, sys, threading, time
port, chunks, pause = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port)); s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
got = hashlib.sha256(); n = [0]
def reader():
    try:
        while True:
            d = c.recv(65536)
            if not d: break
            got.update(d); n[0] += len(d)
        print("got n=%d sha=%s" % (n[0], got.hexdigest()), flush=True)
    except OSError as e:
        print("server reset: %s" % e.__class__.__name__, flush=True)
t = threading.Thread(target=reader); t.start()
sent = hashlib.sha256(); m = 0
try:
    for i in range(chunks):
        piece = hashlib.sha256(str(i).encode()).digest() * 2048
        c.sendall(piece); sent.update(piece); m += len(piece)
        time.sleep(pause)
    c.shutdown(socket.SHUT_WR)
    print("sent n=%d sha=%s" % (m, sent.hexdigest()), flush=True)
except OSError as e:
    print("server reset: %s" % e.__class__.__name__, flush=True)
t.join()
`;

/** The client, in a session: echoes what it reads, says how far it got, and what it got at the end
 * (the first half of the SHA-256: the line fits the screen). */
const CLIENT = `
import hashlib, socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
print("connected", flush=True)
h = hashlib.sha256(); n = 0; said = 0
try:
    while True:
        d = c.recv(65536)
        if not d: break
        h.update(d); n += len(d); c.sendall(d)
        if n - said >= 1 << 20:
            said = n; print("at %d MiB" % (n >> 20), flush=True)
    c.shutdown(socket.SHUT_WR)
    nodelay = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    print("client done n=%d sha=%s nodelay=%d" % (n, h.hexdigest()[:32], nodelay), flush=True)
except OSError as e:
    print("client reset: %s" % e.__class__.__name__, flush=True)
time.sleep(600)
`;

/** A session's relayed connections as its agent lists them. */
async function relayedOf(agent: HostAgent, id: string): Promise<SessionInfo['relayed']> {
  return (await agent.sessions()).find((s) => s.id === id)?.relayed;
}

/**
 * Waits until `agent` lists `what` as the first relayed connection of session `id`. On a timeout
 * the error says what it listed, with the screen and the logs of the agents that took part.
 */
async function waitNamed(agent: HostAgent, id: string, what: string, involved: HostAgent[], timeoutMs = 20_000): Promise<void> {
  try {
    await waitFor(`${agent.name} to name the connection`, async () => (await relayedOf(agent, id))?.[0]?.what === what, timeoutMs);
  } catch (err) {
    const listed = JSON.stringify(await relayedOf(agent, id).catch((e: unknown) => String(e)));
    const logs = involved.map((x) => `--- ${x.name}'s log ---\n${x.log().split('\n').slice(-60).join('\n')}`).join('\n');
    throw new Error(`${(err as Error).message}; it lists ${listed}\n--- screen ---\n${await agent.screen(id).catch(String)}\n${logs}`);
  }
}

describe.skipIf(unavailable !== null)('connections follow the move', () => {
  const lab = new SimLab();
  let scratch: string;
  const spawned: ChildProcess[] = [];

  beforeAll(() => {
    scratch = mkdtempSync('/tmp/vos-mig-relay-');
    chmodSync(scratch, 0o755); // the scripts are run by an ordinary user too
    writeFileSync(join(scratch, 'server.py'), SERVER);
    writeFileSync(join(scratch, 'client.py'), CLIENT);
  });
  afterAll(() => {
    for (const p of spawned) p.kill('SIGKILL');
    rmSync(scratch, { recursive: true, force: true });
  });

  /** alpha, beta and gamma on the first three of `hosts` namespaces, each paired with the other two. */
  async function threeAgents(hosts: number): Promise<[HostAgent, HostAgent, HostAgent]> {
    lab.network(hosts);
    const agents = await Promise.all([lab.agent(0, 'alpha'), lab.agent(1, 'beta'), lab.agent(2, 'gamma')]);
    await pairAgents(agents[0], agents[1]);
    await pairAgents(agents[1], agents[2]);
    await pairAgents(agents[2], agents[0]);
    return agents;
  }

  /** The server on alpha's host, outside any session; its lines as they come. */
  async function startServer(a: HostAgent, port: number, chunks: number, pause: number): Promise<{ out: () => string }> {
    const server = lab.net!.spawn(a.host, 'python3', [join(scratch, 'server.py'), String(port), String(chunks), String(pause)]);
    spawned.push(server);
    let out = '';
    server.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    server.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor('the server to listen', () => out.includes('listening'));
    return { out: () => out };
  }

  it.each([
    ['root', undefined],
    ['an ordinary user', UNPRIVILEGED],
  ] as const)('a client streaming through a connection to another machine moves mid-stream: every byte arrives once, in order, both ways (as %s)', async (_who, user) => {
    const [a, b] = await lab.pairedAgents(user ? { asUser: user } : {}, user ? { asUser: user } : {});
    const port = 47100 + (process.pid % 500);
    const chunks = 320; // 20 MiB, at least 6.4 s
    const server = await startServer(a, port, chunks, 0.02);
    const id = (await a.vos(['run', '-d', '--name', 'client', '--', 'python3', join(scratch, 'client.py'), a.host.address, String(port)])).stdout.trim();
    await waitFor('the stream to be under way', async () => /at 2 MiB/.test(await a.screen(id)), 20_000);
    const moved = await a.vos(['migrate', id, 'beta', '--json']);
    expect(moved.code, moved.stderr).toBe(0);
    const r = JSON.parse(moved.stdout) as MigrationResult;
    expect(r.relayed).toEqual([`process 2 (python3): a TCP connection to ${a.host.address}:${port}`]);
    // Nothing said it would be lost.
    expect(moved.stderr).not.toMatch(/restored disconnected/);
    const there = r.session.id.split('@')[0]!;
    // Listed there with the machine that keeps it (named once alpha's answer came: a round trip).
    const what = `process 2 (python3): a TCP connection to ${a.host.address}:${port}`;
    await waitNamed(b, there, what, [a, b]);
    expect(await relayedOf(b, there)).toEqual([{ what, via: { id: expect.any(String), name: 'alpha' } }]);
    const listed = (await b.sessions()).find((s: SessionInfo) => s.id === there)!;
    // The program there (and so its restorer) runs as that user.
    expect(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${listed.pid}/status`, 'utf8'))![1]).toBe(String(user?.uid ?? 0));

    const done = await waitFor('the client to finish there', async () => /client done n=(\d+) sha=(\w+) nodelay=(\d)/.exec(await b.screen(there)), 60_000);
    await waitFor('the server to finish', () => /got n=/.test(server.out()), 30_000);
    const sent = /sent n=(\d+) sha=(\w+)/.exec(server.out())!;
    const got = /got n=(\d+) sha=(\w+)/.exec(server.out())!;
    expect(Number(sent[1])).toBe(chunks * 65536);
    expect(done[1]).toBe(sent[1]); // every byte the server sent, once
    expect(done[2]).toBe(sent[2]!.slice(0, 32)); // in order
    expect(got[1]).toBe(sent[1]); // and every byte the client echoed, before and after the move
    expect(got[2]).toBe(sent[2]);
    expect(done[3]).not.toBe('0'); // TCP_NODELAY kept
    // Both ends closed: nothing is relayed any more.
    await waitFor('the relayed connection to be gone there', async () => (await b.sessions()).find((s) => s.id === there)!.relayed === undefined, 15_000);
  }, 120_000);

  it('a Unix stream socket to a local server and an IPv6 socket follow the move too, on to a third machine straight, and back', async () => {
    const [a, b, c] = await threeAgents(3);
    const port = 47700 + (process.pid % 150);
    const path = join(scratch, `echo-${port}.sock`);
    // One echo server, outside any session on alpha, on a Unix path and a TCP port.
    const echo = `import os, socket, threading
def serve(c):
    while True:
        d = c.recv(4096)
        if not d: return
        c.sendall(d.replace(b"ping", b"pong"))
def accept(s):
    while True:
        c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
u = socket.socket(socket.AF_UNIX); u.bind(${JSON.stringify(path)}); u.listen(4)
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(("0.0.0.0", ${port})); t.listen(4)
threading.Thread(target=accept, args=(u,), daemon=True).start()
print("listening", flush=True)
accept(t)`;
    const server = lab.net!.spawn(a.host, 'python3', ['-c', echo]);
    spawned.push(server);
    let up = '';
    server.stdout!.on('data', (d: Buffer) => (up += d.toString()));
    server.stderr!.on('data', (d: Buffer) => (up += d.toString()));
    await waitFor('the echo server', () => up.includes('listening'));
    // Each line typed: "ping N" on both connections, and what came back.
    const client = `import socket, sys
u = socket.socket(socket.AF_UNIX); u.connect(${JSON.stringify(path)})
v6 = socket.socket(socket.AF_INET6); v6.connect(("::ffff:${a.host.address}", ${port}))
print("connected", v6.family.name, flush=True)
for line in sys.stdin:
    n = line.strip()
    u.sendall(b"ping " + n.encode()); v6.sendall(b"ping " + n.encode())
    print("unix", u.recv(100).decode(), "v6", v6.recv(100).decode(), flush=True)`;
    const id = (await a.vos(['run', '-d', '--name', 'two', '--', 'python3', '-u', '-c', client])).stdout.trim();
    await waitFor('the connections', async () => /connected AF_INET6/.test(await a.screen(id)));
    await a.vos(['send', id, '1\\r']);
    await waitFor('the answers', async () => /unix pong 1 v6 pong 1/.test(await a.screen(id)));
    const moved = await a.vos(['migrate', id, 'beta', '--json']);
    expect(moved.code, moved.stderr).toBe(0);
    const r = JSON.parse(moved.stdout) as MigrationResult;
    expect([...r.relayed].sort()).toEqual(
      [`process 2 (python3): a TCP connection to [::ffff:${a.host.address}]:${port}`, `process 2 (python3): a Unix socket to ${path}`].sort(),
    );
    const there = r.session.id.split('@')[0]!;
    await b.vos(['send', there, '2\\r']);
    await waitFor('the answers there', async () => /unix pong 2 v6 pong 2/.test(await b.screen(there)), 20_000);
    // On to gamma: beta cuts itself out of both (the Unix one it knows by the name its restorer gave it).
    const on = await b.vos(['migrate', there, 'gamma', '--json']);
    expect(on.code, on.stderr).toBe(0);
    const third = (JSON.parse(on.stdout) as MigrationResult).session.id.split('@')[0]!;
    const straight = async (agent: HostAgent, sid: string): Promise<boolean> => {
      const relayed = (await relayedOf(agent, sid)) ?? [];
      return relayed.length === 2 && relayed.every((x) => x.via.name === 'alpha');
    };
    await waitFor('gamma to take both straight from alpha', () => straight(c, third), 20_000).catch(async (err: unknown) => {
      throw new Error(`${(err as Error).message}: ${JSON.stringify(await relayedOf(c, third))}\n${b.log().split('\n').slice(-20).join('\n')}`);
    });
    expect(b.log().match(/handed on, straight to alpha/g)).toHaveLength(2);
    await c.vos(['send', third, '3\\r']);
    await waitFor('the answers at gamma', async () => /unix pong 3 v6 pong 3/.test(await c.screen(third)), 20_000);
    // And back home.
    const back = await c.vos(['migrate', third, 'alpha', '--json']);
    expect(back.code, back.stderr).toBe(0);
    const home = (JSON.parse(back.stdout) as MigrationResult).session.id.split('@')[0]!;
    await waitFor('alpha to take both back from gamma', () => straight(a, home), 20_000);
    expect(c.log().match(/handed on, straight to alpha/g)).toHaveLength(2);
    await a.vos(['send', home, '4\\r']);
    await waitFor('the answers back home', async () => /unix pong 4 v6 pong 4/.test(await a.screen(home)), 20_000);
  }, 150_000);

  it.skipIf(!hasSshd())('an ssh client logged in to a server on a fourth host moves from alpha to beta, on to gamma and back: it keeps counting and answers commands', async () => {
    // alpha, beta and gamma, each paired with the other two; the server on a host of its own.
    const [a, b, c] = await threeAgents(4);
    const net = lab.net!;
    const serverHost = net.hosts[3]!;
    const port = 47900 + (process.pid % 90);
    const keys = join(scratch, 'ssh');
    mkdirSync(keys, { mode: 0o700 });
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(keys, 'host')]);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(keys, 'user')]);
    copyFileSync(join(keys, 'user.pub'), join(keys, 'authorized_keys'));
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // sshd's privilege separation directory
    // A throwaway server, outside any session: this key only, nothing else of the machine's.
    const sshd = net.spawn(serverHost, '/usr/sbin/sshd', [
      '-D', '-e', '-f', '/dev/null', '-p', String(port), '-h', join(keys, 'host'),
      '-o', `AuthorizedKeysFile=${join(keys, 'authorized_keys')}`, '-o', 'StrictModes=no', '-o', 'UsePAM=no',
      '-o', 'PasswordAuthentication=no', '-o', 'KbdInteractiveAuthentication=no', '-o', 'PidFile=none',
    ]);
    spawned.push(sshd);
    let log = '';
    sshd.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    await waitFor('sshd to listen', () => /Server listening on 0\.0\.0\.0 port/.test(log));
    // Logged in there: a counter, and an answer to each number typed.
    const remote = 'i=0; (while :; do i=$((i+1)); echo count $i; sleep 0.3; done) & while read n; do echo answer $((n*2)); done';
    const id = (
      await a.vos([
        'run', '-d', '--name', 'ssh', '--', 'ssh', '-i', join(keys, 'user'), '-p', String(port), '-o', 'StrictHostKeyChecking=no',
        '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', `root@${serverHost.address}`, remote,
      ])
    ).stdout.trim();
    const counted = async (agent: HostAgent, sid: string): Promise<number> =>
      Math.max(0, ...[...(await agent.screen(sid)).matchAll(/count (\d+)/g)].map((m) => Number(m[1])));
    /** The login goes on at `agent`: its counter counts on, and `n` typed is answered with 2n. */
    const goesOn = async (agent: HostAgent, sid: string, n: number): Promise<void> => {
      const at = await counted(agent, sid);
      await waitFor(`it to count on at ${agent.name}`, async () => (await counted(agent, sid)) >= at + 3, 20_000);
      await agent.vos(['send', sid, `${n}\\r`]);
      await waitFor(`the answer at ${agent.name}`, async () => new RegExp(`answer ${n * 2}`).test(await agent.screen(sid)));
    };
    await waitFor('the counter there', async () => (await counted(a, id)) >= 3, 20_000);
    await a.vos(['send', id, '21\\r']);
    await waitFor('the answer', async () => /answer 42/.test(await a.screen(id)));

    const moved = await a.vos(['migrate', id, 'beta', '--json']);
    expect(moved.code, moved.stderr).toBe(0);
    const r = JSON.parse(moved.stdout) as MigrationResult;
    expect(r.relayed).toEqual([expect.stringMatching(new RegExp(`a TCP connection to ${serverHost.address.replace(/\./g, '\\.')}:${port}$`))]);
    const there = r.session.id.split('@')[0]!;
    await goesOn(b, there, 50);

    // On to gamma: the connection goes on, and beta cuts itself out: gamma talks to alpha directly.
    const on = await b.vos(['migrate', there, 'gamma', '--json']);
    expect(on.code, on.stderr).toBe(0);
    const onward = JSON.parse(on.stdout) as MigrationResult;
    expect(onward.relayed).toEqual(r.relayed); // named as it was: what it is connected to, not beta's relay
    const third = onward.session.id.split('@')[0]!;
    // Named once beta's answer came (at most a round trip after the restore).
    await waitNamed(c, third, r.relayed[0]!, [a, b, c]);
    await waitFor('gamma to take the connection straight from alpha', async () => (await relayedOf(c, third))?.[0]?.via.name === 'alpha', 20_000);
    expect(b.log()).toMatch(/handed on, straight to alpha, at byte \d+ down, \d+ up/);
    // Beta is out of the chain: cut off from everyone, the session at gamma goes on.
    lab.net!.cut(b.host);
    try {
      await goesOn(c, third, 8);

      // And back to alpha, where the real connection is kept: gamma cuts itself out too.
      const back = await c.vos(['migrate', third, 'alpha', '--json']);
      expect(back.code, back.stderr).toBe(0);
      const returned = JSON.parse(back.stdout) as MigrationResult;
      expect(returned.relayed).toEqual(r.relayed);
      const home = returned.session.id.split('@')[0]!;
      await waitNamed(a, home, r.relayed[0]!, [a, b, c]);
      await waitFor('alpha to take the connection back from gamma', async () => (await relayedOf(a, home))?.[0]?.via.name === 'alpha', 20_000);
      expect(c.log()).toMatch(/handed on, straight to alpha/);
      lab.net!.cut(c.host); // gamma out too: only alpha is left, with the server
      await goesOn(a, home, 7);
    } finally {
      lab.net!.restore(b.host);
      lab.net!.restore(c.host);
    }
    // The counter never started again: one login all along.
    expect(log).toMatch(/Accepted publickey for root/);
    expect(log.match(/Accepted publickey/g)).toHaveLength(1);
  }, 180_000);

  it('a stream moved on mid-stream, alpha → beta → gamma and back to alpha: beta and gamma cut themselves out, and every byte arrives once, in order, both ways', async () => {
    const [a, b, c] = await threeAgents(3);
    const port = 47250 + (process.pid % 50);
    const chunks = 480; // 30 MiB, 64 KiB every 20 ms: at least 9.6 s
    const server = await startServer(a, port, chunks, 0.02);
    const id = (await a.vos(['run', '-d', '--name', 'client', '--', 'python3', join(scratch, 'client.py'), a.host.address, String(port)])).stdout.trim();
    await waitFor('the stream to be under way', async () => /at 2 MiB/.test(await a.screen(id)), 20_000);
    const toBeta = await a.vos(['migrate', id, 'beta', '--json']);
    expect(toBeta.code, toBeta.stderr).toBe(0);
    const atBeta = (JSON.parse(toBeta.stdout) as MigrationResult).session.id.split('@')[0]!;
    await waitFor('the stream to go on at beta', async () => /at [6-9] MiB|at \d\d MiB/.test(await b.screen(atBeta)), 30_000);
    const toGamma = await b.vos(['migrate', atBeta, 'gamma', '--json']);
    expect(toGamma.code, toGamma.stderr).toBe(0);
    const atGamma = (JSON.parse(toGamma.stdout) as MigrationResult).session.id.split('@')[0]!;
    await waitFor('gamma to take the stream straight from alpha', async () => (await relayedOf(c, atGamma))?.[0]?.via.name === 'alpha', 20_000);
    const mib = async (agent: HostAgent, sid: string): Promise<number> => Math.max(0, ...[...(await agent.screen(sid)).matchAll(/at (\d+) MiB/g)].map((m) => Number(m[1])));
    const onGamma = await mib(c, atGamma);
    await waitFor('the stream to go on at gamma', async () => (await mib(c, atGamma)) >= onGamma + 2 || /client done/.test(await c.screen(atGamma)), 30_000);
    const back = await c.vos(['migrate', atGamma, 'alpha', '--json']);
    expect(back.code, back.stderr).toBe(0);
    const home = (JSON.parse(back.stdout) as MigrationResult).session.id.split('@')[0]!;
    const done = await waitFor('the client to finish back at alpha', async () => /client done n=(\d+) sha=(\w+)/.exec(await a.screen(home)), 60_000).catch(async (err: unknown) => {
      const logs = [a, b, c].map((x) => `--- ${x.name}'s log ---\n${x.log().split('\n').slice(-40).join('\n')}`).join('\n');
      throw new Error(`${(err as Error).message}\n--- screen ---\n${await a.screen(home).catch(String)}\n--- server ---\n${server.out()}\n${logs}`);
    });
    await waitFor('the server to finish', () => /got n=/.test(server.out()), 30_000);
    const sent = /sent n=(\d+) sha=(\w+)/.exec(server.out())!;
    const got = /got n=(\d+) sha=(\w+)/.exec(server.out())!;
    expect(Number(sent[1])).toBe(chunks * 65536);
    expect([done[1], done[2]]).toEqual([sent[1], sent[2]!.slice(0, 32)]); // every byte from the server, once, in order
    expect([got[1], got[2]]).toEqual([sent[1], sent[2]]); // and every byte the client echoed
    // Both cut themselves out (and no relay of it was reset on the way).
    expect(b.log()).toMatch(/handed on, straight to alpha/);
    expect(c.log()).toMatch(/handed on, straight to alpha/);
    for (const x of [a, b, c]) expect(x.log()).not.toMatch(/the connection is reset|; reset$/m);
  }, 150_000);

  it.each([
    ['root', undefined, 0],
    ['an ordinary user', UNPRIVILEGED, 1],
  ] as const)('a connection nobody reads, either way, holds up no other connection of the same move (as %s)', async (_who, user, n) => {
    const [a, b] = await lab.pairedAgents(user ? { asUser: user } : {}, user ? { asUser: user } : {});
    const port = 47300 + (process.pid % 50) + n * 50;
    // Both ends flood the first connection (a byte pattern of period 251) and neither reads it,
    // until told to; each says "stalled N" when its sending has stopped for a second at N bytes.
    const common = `import socket, sys, threading, time
PAT = bytes(range(251)) * 300
def flood(s, say):
    n = [0]; last = [time.time()]; told = [0]
    def watch():
        while True:
            time.sleep(0.25)
            if time.time() - last[0] > 1 and n[0] != told[0]:
                told[0] = n[0]; say("stalled %d" % n[0])
    threading.Thread(target=watch, daemon=True).start()
    while True:
        s.sendall(PAT[n[0] % 251:n[0] % 251 + 65536]); n[0] += 65536; last[0] = time.time()
def check(s, want):
    o = 0
    while o < want:
        d = s.recv(min(65536, want - o))
        if not d or d != PAT[o % 251:o % 251 + len(d)]: return "BAD at %d" % o
        o += len(d)
    return "ok %d" % o
`;
    const server = `${common}
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", ${port})); srv.listen(2)
print("listening", flush=True)
f, _ = srv.accept(); assert f.recv(1) == b"F"
e, _ = srv.accept(); assert e.recv(1) == b"E"
threading.Thread(target=flood, args=(f, lambda w: print("down " + w, flush=True)), daemon=True).start()
for line in e.makefile("rb"):
    w = line.decode().strip()
    e.sendall((("up " + check(f, 4 << 20)) if w == "drainup" else w.replace("ping", "pong")).encode() + b"\\n")
`;
    const client = `${common}
f = socket.create_connection(("${a.host.address}", ${port})); f.sendall(b"F")
e = socket.create_connection(("${a.host.address}", ${port})); e.sendall(b"E")
print("connected", flush=True)
threading.Thread(target=flood, args=(f, lambda w: print("up " + w, flush=True)), daemon=True).start()
answers = e.makefile("rb")
for line in sys.stdin:
    w = line.strip()
    if w == "drain": print("down " + check(f, 4 << 20), flush=True); continue
    e.sendall(("drainup" if w == "drainup" else "ping " + w).encode() + b"\\n")
    print(answers.readline().decode().strip(), flush=True)
`;
    const proc = lab.net!.spawn(a.host, 'python3', ['-u', '-c', server]);
    spawned.push(proc);
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor('the server to listen', () => out.includes('listening'));
    const id = (await a.vos(['run', '-d', '--name', 'flood', '--', 'python3', '-u', '-c', client])).stdout.trim();
    await waitFor('the connections', async () => /connected/.test(await a.screen(id)));
    const lastStall = (text: string, way: string): number => Math.max(0, ...[...text.matchAll(new RegExp(`${way} stalled (\\d+)`, 'g'))].map((m) => Number(m[1])));
    // Both floods stalled here already (the kernel's buffers are full); then moved.
    await waitFor('both floods to stall', async () => lastStall(out, 'down') > 0 && lastStall(await a.screen(id), 'up') > 0, 20_000);
    await a.vos(['send', id, '1\\r']);
    await waitFor('the answer', async () => /pong 1/.test(await a.screen(id)));
    const stalledDown = lastStall(out, 'down');
    const moved = await a.vos(['migrate', id, 'beta', '--json']);
    expect(moved.code, moved.stderr).toBe(0);
    const there = (JSON.parse(moved.stdout) as MigrationResult).session.id.split('@')[0]!;
    expect((JSON.parse(moved.stdout) as MigrationResult).relayed).toHaveLength(2);
    // The relay takes more of each flood, as much as it holds, and then they stall again: the
    // anchor's per-connection limits are reached both ways.
    await waitFor('the flood from the server to stall again, through the relay', () => lastStall(out, 'down') > stalledDown, 30_000);
    await waitFor('the flood from the program to stall again, through the relay', async () => lastStall(await b.screen(there), 'up') > 0, 30_000);
    // The other connection of the same move still answers at once.
    await b.vos(['send', there, '2\\r']);
    await waitFor('the answer on the other connection there', async () => /pong 2/.test(await b.screen(there)), 10_000);
    // And the stalled one goes on once read, every byte in order, both ways.
    await b.vos(['send', there, 'drain\\r']);
    await waitFor('the program to read 4 MiB of the flood', async () => /down (ok|BAD)/.test(await b.screen(there)), 30_000);
    await b.vos(['send', there, 'drainup\\r']);
    await waitFor('the server to read 4 MiB of the flood', async () => /up (ok|BAD)/.test(await b.screen(there)), 30_000);
    const screen = await b.screen(there);
    expect(screen).toMatch(/down ok 4194304/);
    expect(screen).toMatch(/up ok 4194304/);
  }, 120_000);

  /** A client moved to beta mid-stream (64 KiB every `pause` s from the server, `chunks` of them). */
  async function movedStream(chunks: number, pause: number, port: number): Promise<{ a: HostAgent; b: HostAgent; there: string; server: { out: () => string } }> {
    const [a, b] = await lab.pairedAgents({ env: FAST_LINKS }, { env: FAST_LINKS });
    const server = await startServer(a, port, chunks, pause);
    const id = (await a.vos(['run', '-d', '--name', 'client', '--', 'python3', join(scratch, 'client.py'), a.host.address, String(port)])).stdout.trim();
    await waitFor('the stream to be under way', async () => /at 1 MiB/.test(await a.screen(id)), 20_000);
    const moved = await a.vos(['migrate', id, 'beta', '--json']);
    expect(moved.code, moved.stderr).toBe(0);
    const there = (JSON.parse(moved.stdout) as MigrationResult).session.id.split('@')[0]!;
    return { a, b, there, server };
  }

  it('the link lost for a few seconds mid-stream: the connection waits for it and goes on, every byte once, both ways', async () => {
    const port = 47400 + (process.pid % 200);
    const chunks = 200; // 12.5 MiB, 64 KiB every 50 ms
    const { b, there, server } = await movedStream(chunks, 0.05, port);
    await waitFor('the stream to go on there', async () => /at 3 MiB/.test(await b.screen(there)), 30_000);
    // Longer than the link's own patience (FAST_LINKS: 4 s), shorter than the relay's (8 s after that).
    lab.net!.cut(b.host);
    await new Promise((r) => setTimeout(r, 6_000));
    lab.net!.restore(b.host);
    const done = await waitFor('the client to finish there', async () => /client done n=(\d+) sha=(\w+)/.exec(await b.screen(there)), 60_000);
    await waitFor('the server to finish', () => /got n=/.test(server.out()), 30_000);
    // The link was lost indeed (not only slow): the relay took it up again on a new one.
    expect(b.log()).toMatch(/the link is back: it goes on from byte \d+/);
    const sent = /sent n=(\d+) sha=(\w+)/.exec(server.out())!;
    const got = /got n=(\d+) sha=(\w+)/.exec(server.out())!;
    expect(Number(sent[1])).toBe(chunks * 65536);
    expect([done[1], done[2]]).toEqual([sent[1], sent[2]!.slice(0, 32)]);
    expect([got[1], got[2]]).toEqual([sent[1], sent[2]]);
  }, 120_000);

  it('the link lost for longer than the relay waits: the program there and the server here see a reset', async () => {
    const port = 47500 + (process.pid % 100);
    const { b, there, server } = await movedStream(100_000, 0.2, port);
    await waitFor('the stream to go on there', async () => /at 2 MiB/.test(await b.screen(there)), 30_000);
    lab.net!.cut(b.host);
    try {
      // 4 s until the link is declared lost, then 8 s of waiting for it.
      await waitFor('the program there to see a reset', async () => /client reset: ConnectionResetError/.test(await b.screen(there)), 40_000);
      await waitFor('the server to see a reset', () => /server reset: (ConnectionResetError|BrokenPipeError)/.test(server.out()), 40_000);
    } finally {
      lab.net!.restore(b.host);
    }
  }, 120_000);

  it('the source agent killed: the program there and the server here see a reset, nothing hangs', async () => {
    const [a, b] = await lab.pairedAgents({ env: FAST_LINKS }, { env: FAST_LINKS });
    const port = 47600 + (process.pid % 300);
    const server = await startServer(a, port, 100_000, 0.2); // 64 KiB every 200 ms, for long
    const id = (await a.vos(['run', '-d', '--name', 'client', '--', 'python3', join(scratch, 'client.py'), a.host.address, String(port)])).stdout.trim();
    await waitFor('the stream to be under way', async () => /at 1 MiB/.test(await a.screen(id)), 20_000);
    const moved = await a.vos(['migrate', id, 'beta', '--json']);
    expect(moved.code, moved.stderr).toBe(0);
    const there = (JSON.parse(moved.stdout) as MigrationResult).session.id.split('@')[0]!;
    await waitFor('the stream to go on there', async () => /at 3 MiB/.test(await b.screen(there)), 30_000);
    await a.kill('SIGKILL');
    await waitFor('the program there to see a reset', async () => /client reset: ConnectionResetError/.test(await b.screen(there)), 30_000);
    await waitFor('the server to see a reset', () => /server reset: (ConnectionResetError|BrokenPipeError)/.test(server.out()), 30_000);
  }, 120_000);
});
