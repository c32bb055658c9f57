/**
 * A move's listener check (agent/migration/listeners.ts), with real sockets: the source finds
 * what a real process listens on (a TCP port, IPv6 too, and a Unix path); the target says which
 * of them it could not listen on now (a port, path or abstract name in use, a file that is not a
 * socket), without connecting to anything, and a peer's malformed listener is refused before
 * anything is looked at.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { badListener, listenersTakenHere, sessionListeners } from '../../src-main/agent/migration/listeners.js';
import { checkParams } from '../../src-main/api/validate.js';
import { waitFor } from '../helpers/agent-process.js';

let dir: string;
let child: ChildProcess | null = null;
let out = '';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vos-listeners-'));
});

afterAll(() => {
  child?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const listen = (server: Server, port: number, host: string): Promise<void> =>
  new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });

describe('the listeners of a moving session', () => {
  it('are found on the source: TCP (IPv4, IPv6), Unix paths and abstract names', async () => {
    const path = join(dir, 'srv.sock');
    child = spawn('python3', [
      '-c',
      [
        'import socket, time',
        'a = socket.socket(); a.bind(("127.0.0.1", 0)); a.listen(1)',
        'b = socket.socket(socket.AF_INET6); b.bind(("::1", 0)); b.listen(1)',
        `u = socket.socket(socket.AF_UNIX); u.bind(${JSON.stringify(path)}); u.listen(1)`,
        'x = socket.socket(socket.AF_UNIX); x.bind("\\0vos-abstract-probe"); x.listen(1)',
        'print(a.getsockname()[1], b.getsockname()[1], flush=True)',
        'time.sleep(60)',
      ].join('\n'),
    ]);
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const [v4, v6] = (await waitFor('the listener to start', () => (/^(\d+) (\d+)\n/.exec(out) ? out : null))).trim().split(' ').map(Number);
    const found = sessionListeners(child.pid!, 0); // the process itself (no pod around it)
    expect(found).toContainEqual({ kind: 'tcp', address: '127.0.0.1', port: v4 });
    expect(found).toContainEqual({ kind: 'tcp', address: '0:0:0:0:0:0:0:1', port: v6 });
    expect(found).toContainEqual({ kind: 'unix', address: path, port: 0 });
    expect(found).toContainEqual({ kind: 'unix', address: '@vos-abstract-probe', port: 0 });
    expect(found).toHaveLength(4);
    // Where it runs, its own ports and path are taken: the check says so, naming each.
    const taken = await listenersTakenHere(found);
    expect(taken).toEqual(
      expect.arrayContaining([
        `the session listens on 127.0.0.1:${v4}, which is in use here`,
        `the session listens on [0:0:0:0:0:0:0:1]:${v6}, which is in use here`,
        `the session listens on ${path}, where another program listens here`,
        'the session listens on the abstract Unix socket name @vos-abstract-probe, which another program holds here',
      ]),
    );
    child.kill('SIGKILL');
    child = null;
  });

  it('are free on a target where nothing holds them; a stale socket file does not count, a plain file does', async () => {
    const probe = createServer();
    await listen(probe, 0, '127.0.0.1');
    const port = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    const stale = join(dir, 'stale.sock');
    // A socket file nobody listens on any more (Python leaves it behind when it ends).
    execFileSync('python3', ['-c', `import socket\ns = socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(stale)}); s.listen(1)`]);
    expect(statSync(stale).isSocket()).toBe(true);
    const plain = join(dir, 'plain');
    writeFileSync(plain, 'x');
    expect(await listenersTakenHere([{ kind: 'tcp', address: '127.0.0.1', port }, { kind: 'unix', address: stale, port: 0 }])).toEqual([]);
    expect(await listenersTakenHere([{ kind: 'unix', address: plain, port: 0 }])).toEqual([`the session listens on ${plain}, where a file that is not a socket is here`]);
    const holder = createServer();
    await listen(holder, port, '127.0.0.1');
    try {
      expect(await listenersTakenHere([{ kind: 'tcp', address: '127.0.0.1', port }])).toEqual([`the session listens on 127.0.0.1:${port}, which is in use here`]);
    } finally {
      await new Promise((r) => holder.close(r));
    }
  });

  it('checks a Unix path and an abstract name in /proc/net/unix: the program listening there sees no connection', async () => {
    const path = join(dir, 'quiet.sock');
    let connections = 0;
    const server = createServer(() => connections++);
    await new Promise<void>((r) => server.listen(path, () => r()));
    const name = `vos-quiet-${process.pid}`;
    // (node binds an abstract name padded with NULs to the whole sun_path: another name; python does not.)
    const abstract = spawn('python3', [
      '-c',
      `import socket, sys\nx = socket.socket(socket.AF_UNIX); x.bind("\\0${name}"); x.listen(1); print("ready", flush=True)\nc, _ = x.accept(); print("accepted", flush=True)\nsys.stdin.read()`,
    ]);
    let said = '';
    abstract.stdout!.on('data', (d: Buffer) => (said += d.toString()));
    await waitFor('the abstract listener', () => said.includes('ready'));
    try {
      expect(await listenersTakenHere([{ kind: 'unix', address: path, port: 0 }, { kind: 'unix', address: `@${name}`, port: 0 }])).toEqual([
        `the session listens on ${path}, where another program listens here`,
        `the session listens on the abstract Unix socket name @${name}, which another program holds here`,
      ]);
      expect(await listenersTakenHere([{ kind: 'unix', address: `@${name}-free`, port: 0 }])).toEqual([]);
      // Give a connection made by the check time to be seen: there must be none.
      await new Promise((r) => setImmediate(r));
      expect(connections).toBe(0);
      expect(said).not.toContain('accepted');
    } finally {
      await new Promise((r) => server.close(r));
      abstract.kill('SIGKILL');
    }
    // Once no one listens, the leftover socket file does not count.
    expect(await listenersTakenHere([{ kind: 'unix', address: path, port: 0 }])).toEqual([]);
  });

  it('refuses a peer\'s malformed listeners before looking at anything', () => {
    expect(badListener({ kind: 'tcp', address: 'example.com', port: 80 })).toMatch(/cannot be/);
    expect(badListener({ kind: 'tcp', address: '127.0.0.1', port: 0 })).toMatch(/cannot be/);
    expect(badListener({ kind: 'unix', address: 'relative.sock', port: 0 })).toMatch(/cannot be/);
    expect(badListener({ kind: 'unix', address: '/tmp/../etc/x', port: 0 })).toMatch(/cannot be/);
    expect(badListener({ kind: 'unix', address: `/${'a'.repeat(200)}`, port: 0 })).toMatch(/cannot be/);
    expect(badListener({ kind: 'udp' as 'tcp', address: '127.0.0.1', port: 53 })).toMatch(/unknown kind/);
    expect(badListener({ kind: 'tcp', address: '::1', port: 8080 })).toBeNull();
    expect(badListener({ kind: 'unix', address: '@name', port: 0 })).toBeNull();
    expect(badListener({ kind: 'unix', address: `@${'a'.repeat(200)}`, port: 0 })).toMatch(/cannot be/);
    const offer = { name: 'n', command: 'c', args: [], cwd: '/', arch: 'x64', dirs: [], files: [], cols: 80, rows: 24, bytes: 0, sendUpTo: 0 };
    expect(() => checkParams('migration.offer', { ...offer, listeners: [{ kind: 'tcp', address: '127.0.0.1', port: 70000 }] })).toThrow();
    expect(() => checkParams('migration.offer', { ...offer, listeners: [{ kind: 'sctp', address: '127.0.0.1', port: 1 }] })).toThrow();
    expect(() => checkParams('migration.offer', { ...offer, listeners: new Array(257).fill({ kind: 'tcp', address: '127.0.0.1', port: 1 }) })).toThrow();
    expect(() => checkParams('migration.offer', { ...offer, listeners: 'x' })).toThrow();
    expect(() => checkParams('migration.offer', { ...offer, listeners: [{ kind: 'tcp', address: '127.0.0.1', port: 8000 }] })).not.toThrow();
    expect(() => checkParams('migration.offer', offer)).not.toThrow();
  });
});
