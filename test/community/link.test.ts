/**
 * Links on loopback (no root needed): two real TLS endpoints with their own certificates. The
 * HELLO must match the certificate, a bulk stream keeps its bytes and obeys flow control (a
 * reader that stops makes the writer wait instead of filling memory), and a peer that sends
 * garbage loses its own link only: the agent keeps serving everyone else.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, createServer, type TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { deviceIdOf } from '../../src-main/base/device-id.js';
import { LinkFrameDecoder, encodeLinkFrame, type LinkFrame } from '../../src-main/base/link-frame.js';
import { createSelfSignedIdentity, type SelfSignedIdentity } from '../../src-main/base/x509.js';
import { INITIAL_WINDOW, type IncomingStream } from '../../src-main/agent/community/link-streams.js';
import { LINK_PROTOCOL_VERSION, Link, establishLink, type LinkHello } from '../../src-main/agent/community/link.js';
import { startDaemon, vos, waitFor, type DaemonHandle } from '../helpers/agent-process.js';

function hello(id: SelfSignedIdentity, name: string): LinkHello {
  return { v: LINK_PROTOCOL_VERSION, id: deviceIdOf(id.certDer), name, version: 'test', os: 'Linux', arch: 'x64', port: 0 };
}

/** A connected pair of links over TLS on 127.0.0.1. */
async function linkPair(): Promise<{ a: Link; b: Link; close: () => void }> {
  const ida = createSelfSignedIdentity('a');
  const idb = createSelfSignedIdentity('b');
  const server = createServer({ key: idb.keyPem, cert: idb.certPem, requestCert: true, rejectUnauthorized: false });
  const accepted = new Promise<TLSSocket>((resolve) => server.once('secureConnection', resolve));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const client = tlsConnect({ host: '127.0.0.1', port, key: ida.keyPem, cert: ida.certPem, rejectUnauthorized: false });
  await new Promise<void>((r) => client.once('secureConnect', () => r()));
  const [a, b] = await Promise.all([establishLink(client, hello(ida, 'a'), true), accepted.then((s) => establishLink(s, hello(idb, 'b'), false))]);
  return { a, b, close: () => { a.close('test over'); b.close('test over'); server.close(); } };
}

const noHandlers = { control: () => {}, rpc: () => {}, stream: () => {}, closed: () => {} };

describe('links', () => {
  let cleanup: Array<() => void | Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.reverse()) await c();
    cleanup = [];
  });

  it('carries a stream intact, and a reader that stops holds the writer back', async () => {
    const { a, b, close } = await linkPair();
    cleanup.push(close);
    expect(a.hello.name).toBe('b');
    expect(b.hello.name).toBe('a');
    expect(a.peerId).not.toBe(b.peerId);
    let incoming: IncomingStream | null = null;
    a.start(noHandlers);
    b.start({ ...noHandlers, stream: (s) => (incoming = s) });
    a.trust();
    b.trust();

    const payload = randomBytes(24 * 1024 * 1024);
    const out = a.openStream({ what: 'test' });
    let written = 0;
    const writing = (async () => {
      for (let off = 0; off < payload.length; off += 1 << 20) {
        const piece = payload.subarray(off, off + (1 << 20));
        if (!out.write(piece)) await new Promise((r) => out.once('drain', r));
        written += piece.length;
      }
      out.end();
    })();
    const stream = await waitFor('the stream to open', () => incoming);
    expect(stream.meta).toEqual({ what: 'test' });
    // Nobody reads: the writer must stall after about a window plus the reader's buffer.
    await new Promise((r) => setTimeout(r, 500));
    expect(written).toBeLessThanOrEqual(4 * INITIAL_WINDOW + (2 << 20));
    const stalledAt = written;
    // Now read everything: it all arrives, in order.
    const hash = createHash('sha256');
    let received = 0;
    stream.on('data', (d: Buffer) => {
      hash.update(d);
      received += d.length;
    });
    await new Promise<void>((resolve, reject) => {
      stream.once('end', resolve);
      stream.once('error', reject);
    });
    await writing;
    expect(stalledAt).toBeLessThan(payload.length);
    expect(received).toBe(payload.length);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(payload).digest('hex'));
  });

  it('a hello that does not match the certificate is refused', async () => {
    const ida = createSelfSignedIdentity('a');
    const idb = createSelfSignedIdentity('b');
    const other = createSelfSignedIdentity('c');
    const server = createServer({ key: idb.keyPem, cert: idb.certPem, requestCert: true, rejectUnauthorized: false });
    const refused = new Promise<string>((resolve) =>
      server.once('secureConnection', (s) => establishLink(s, hello(idb, 'b'), false).then(() => resolve('accepted'), (e: Error) => resolve(e.message))),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanup.push(() => void server.close());
    const client = tlsConnect({ host: '127.0.0.1', port: (server.address() as { port: number }).port, key: ida.keyPem, cert: ida.certPem, rejectUnauthorized: false });
    cleanup.push(() => void client.destroy());
    await new Promise<void>((r) => client.once('secureConnect', () => r()));
    client.write(encodeLinkFrame({ kind: 'hello', stream: 0, json: hello(other, 'liar') }));
    expect(await refused).toMatch(/claims id .* but its certificate is/);
  });

  describe('against a running agent', () => {
    let agent: DaemonHandle;
    afterEach(async () => agent?.stop());

    /** Connects with a new identity; returns what the agent sent until it closed or 1.5 s passed. */
    async function talk(send: (socket: TLSSocket, me: SelfSignedIdentity) => void): Promise<{ frames: LinkFrame[]; closed: boolean }> {
      const info = await (await agent.connect()).ready();
      const [host, port] = [info.listen!.slice(0, info.listen!.lastIndexOf(':')), Number(info.listen!.slice(info.listen!.lastIndexOf(':') + 1))];
      const me = createSelfSignedIdentity('probe');
      const socket = tlsConnect({ host, port, key: me.keyPem, cert: me.certPem, rejectUnauthorized: false });
      const decoder = new LinkFrameDecoder({ maxJsonBytes: 1 << 20 });
      const frames: LinkFrame[] = [];
      let closed = false;
      socket.on('data', (d: Buffer) => frames.push(...decoder.push(d)));
      socket.on('error', () => {});
      await new Promise<void>((r) => socket.once('secureConnect', () => r()));
      send(socket, me);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1500);
        socket.once('close', () => {
          closed = true;
          clearTimeout(timer);
          resolve();
        });
      });
      socket.destroy();
      return { frames, closed };
    }

    it('garbage closes that link only; the agent serves the next peer and its local clients', async () => {
      agent = await startDaemon({ args: ['--name', 'target'] });
      const garbage = await talk((s) => s.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')));
      expect(garbage.closed).toBe(true);
      const huge = await talk((s, me) => {
        s.write(encodeLinkFrame({ kind: 'hello', stream: 0, json: hello(me, 'probe') }));
        s.write(encodeLinkFrame({ kind: 'control', stream: 0, json: { t: 'pair-request', pad: 'x'.repeat(100_000) } }));
      });
      expect(huge.frames[0]).toMatchObject({ kind: 'hello', json: { name: 'target' } });
      expect(huge.closed).toBe(true); // over the 64 KiB an unpaired peer may send
      const fine = await talk((s, me) => s.write(encodeLinkFrame({ kind: 'hello', stream: 0, json: hello(me, 'probe') })));
      expect(fine.frames[0]).toMatchObject({ kind: 'hello', json: { name: 'target' } });
      expect(fine.closed).toBe(false);
      expect((await (await agent.connect()).request('session.list', {})).length).toBe(0);
      await waitFor('the log to say why', () => /bad frame/.test(agent.stderr()));
    });

    it('says only what discovery and pairing need in its HELLO: no kernel, no load', async () => {
      agent = await startDaemon({ args: ['--name', 'target'] });
      const fine = await talk((s, me) => s.write(encodeLinkFrame({ kind: 'hello', stream: 0, json: hello(me, 'probe') })));
      const theirs = fine.frames[0] as LinkFrame & { json: Record<string, unknown> };
      expect(theirs).toMatchObject({ kind: 'hello', json: { name: 'target', os: 'Linux' } });
      expect(Object.keys(theirs.json).sort()).toEqual(['arch', 'id', 'name', 'os', 'port', 'v', 'version']);
    });

    it("a peer's name cannot drive the terminal: vos peers and the log show it without escapes, bidi or line breaks", async () => {
      agent = await startDaemon({ args: ['--name', 'target'] });
      const evil = 'ev\x1b]0;owned\x07il\x1b[2J\x1b]52;c;aGk=\x07 \u202eeman\nfake 2024 paired';
      const info = await (await agent.connect()).ready();
      const [host, port] = [info.listen!.slice(0, info.listen!.lastIndexOf(':')), Number(info.listen!.slice(info.listen!.lastIndexOf(':') + 1))];
      const me = createSelfSignedIdentity('probe');
      const socket = tlsConnect({ host, port, key: me.keyPem, cert: me.certPem, rejectUnauthorized: false });
      socket.on('error', () => {});
      cleanup.push(() => void socket.destroy());
      await new Promise<void>((r) => socket.once('secureConnect', () => r()));
      socket.write(encodeLinkFrame({ kind: 'hello', stream: 0, json: { ...hello(me, 'x'), name: evil } }));
      const listed = await waitFor('the peer listed', async () => {
        const out = (await vos(agent.home, ['peers'])).stdout;
        return out.includes('2024 paired') ? out : null;
      });
      const bad = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/;
      expect(listed).not.toMatch(bad);
      expect(listed).toContain('evil emanfake 2024 paired'.replace('emanfake', 'eman fake'));
      const json = JSON.parse((await vos(agent.home, ['peers', '--json'])).stdout) as Array<{ name: string }>;
      expect(json.map((p) => p.name)).toEqual(['evil eman fake 2024 paired']);
      await waitFor('the log to name it', () => agent.stderr().includes('link from evil eman fake 2024 paired'));
      expect(agent.stderr()).not.toMatch(bad);
      expect(agent.stderr()).not.toMatch(/^\S*fake 2024 paired/m);
    });

    it('holds at most 8 links of unpaired machines from one address: fresh identities cannot pile up', async () => {
      agent = await startDaemon({ args: ['--name', 'target'] });
      const info = await (await agent.connect()).ready();
      const [host, port] = [info.listen!.slice(0, info.listen!.lastIndexOf(':')), Number(info.listen!.slice(info.listen!.lastIndexOf(':') + 1))];
      // One after another: twelve at once would also meet the limit on connections not yet
      // identified (8 per source), which closes them before any HELLO is read.
      const probes: { closed: boolean; refused: string; answered: boolean }[] = [];
      for (let i = 0; i < 12; i++) {
        const me = createSelfSignedIdentity('fresh');
        const s = tlsConnect({ socket: netConnect({ host, port, localAddress: '127.0.0.4' }), key: me.keyPem, cert: me.certPem, rejectUnauthorized: false });
        const seen = { closed: false, refused: '', answered: false };
        const decoder = new LinkFrameDecoder({ maxJsonBytes: 1 << 20 });
        s.on('data', (d: Buffer) => {
          for (const f of decoder.push(d)) {
            if (f.kind === 'hello') seen.answered = true;
            if (f.kind === 'control') seen.refused = String((f.json as { reason?: string }).reason);
          }
        });
        s.on('error', () => {});
        s.once('close', () => (seen.closed = true));
        s.once('secureConnect', () => s.write(encodeLinkFrame({ kind: 'hello', stream: 0, json: hello(me, 'fresh') })));
        cleanup.push(() => void s.destroy());
        probes.push(seen);
        await waitFor(`probe ${i} to be answered`, () => seen.answered || seen.closed);
      }
      await waitFor('4 of 12 to be refused', () => probes.filter((p) => p.closed).length >= 4);
      const refused = probes.filter((p) => p.closed);
      expect(refused).toHaveLength(4);
      for (const p of refused) expect(p.refused).toMatch(/too many unpaired machines link from 127\.0\.0\.4/);
      // Another address still gets in.
      const other = await talk((sock, me) => sock.write(encodeLinkFrame({ kind: 'hello', stream: 0, json: hello(me, 'probe') })));
      expect(other.closed).toBe(false);
    });

    it('closes connections that never finish TLS or never say hello, holds few at a time, and still links a real peer', async () => {
      // About 70 KB and a descriptor each: they were never closed and piled up without limit.
      agent = await startDaemon({ args: ['--name', 'target'] });
      const pid = agent.proc.pid!;
      const fds = (): number => readdirSync(`/proc/${pid}/fd`).length;
      const info = await (await agent.connect()).ready();
      const [host, port] = [info.listen!.slice(0, info.listen!.lastIndexOf(':')), Number(info.listen!.slice(info.listen!.lastIndexOf(':') + 1))];
      const before = fds();
      const sockets: Socket[] = [];
      let closed = 0;
      const track = (s: Socket): void => {
        sockets.push(s);
        s.on('error', () => {});
        s.resume(); // reading, or the end the agent sends is never seen
        s.once('close', () => closed++);
      };
      cleanup.push(() => sockets.forEach((s) => s.destroy()));
      // From one address each: raw TCP that never starts TLS (127.0.0.2), TLS that never says hello (127.0.0.3).
      const me = createSelfSignedIdentity('mute');
      let secured = 0;
      for (let i = 0; i < 100; i++) track(netConnect({ host, port, localAddress: '127.0.0.2' }));
      for (let i = 0; i < 20; i++) {
        const s = tlsConnect({ socket: netConnect({ host, port, localAddress: '127.0.0.3' }), key: me.keyPem, cert: me.certPem, rejectUnauthorized: false });
        s.once('secureConnect', () => secured++);
        track(s);
      }
      // Those over the limit of a source are closed at once: 8 from each stay.
      await waitFor('the connections over the per-source limit to be closed', () => closed >= sockets.length - 16, 15_000);
      expect(sockets.length - closed).toBeLessThanOrEqual(16);
      expect(fds() - before).toBeLessThanOrEqual(16 + 10);
      // Meanwhile a real peer (from 127.0.0.1) links.
      const beta = await startDaemon({ args: ['--name', 'beta'] });
      cleanup.push(() => beta.stop());
      const added = await vos(beta.home, ['peer', 'add', info.listen!]);
      expect(added.stdout).toMatch(/^added target /);

      // From many addresses: more than the agent holds in all (64).
      for (let a = 10; a < 30; a++) for (let i = 0; i < 8; i++) track(netConnect({ host, port, localAddress: `127.0.0.${a}` }));
      await waitFor('the connections over the total to be closed', () => closed >= sockets.length - 64, 15_000);
      expect(sockets.length - closed).toBeLessThanOrEqual(64);
      expect(fds() - before).toBeLessThanOrEqual(64 + 10);

      // All of them are closed by the timeouts (TLS handshake and HELLO 5 s, 10 s in all).
      await waitFor('every unidentified connection to be closed', () => closed === sockets.length, 15_000);
      expect(secured).toBeGreaterThan(0); // some finished TLS: the HELLO timeout closed those
      await waitFor('the agent to release their descriptors', () => fds() - before <= 10, 5000);
    }, 60_000);
  });
});
