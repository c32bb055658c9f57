/**
 * Strangers on loopback (no root needed): machines that only say HELLO, each with a fresh
 * identity, leave the peer table bounded. One whose link closes is forgotten; links to strangers
 * that are not pairing are capped (the oldest close). Real TLS links into a LinkManager with its
 * registry and pairings, put together as community.ts does.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { deviceIdOf } from '../../src-main/base/device-id.js';
import { LinkFrameDecoder, encodeLinkFrame } from '../../src-main/base/link-frame.js';
import { createSelfSignedIdentity } from '../../src-main/base/x509.js';
import { loadOrCreateIdentity } from '../../src-main/agent/community/identity.js';
import { LINK_PROTOCOL_VERSION } from '../../src-main/agent/community/link.js';
import { LinkManager, MAX_STRANGER_LINKS } from '../../src-main/agent/community/link-manager.js';
import { Pairings } from '../../src-main/agent/community/pairing.js';
import { PeerRegistry } from '../../src-main/agent/community/peer-registry.js';
import { PeerStore } from '../../src-main/agent/community/peer-store.js';
import { waitFor } from '../helpers/agent-process.js';

/** An agent's community parts, listening on 127.0.0.1. */
async function agent(home: string): Promise<{ registry: PeerRegistry; links: LinkManager; pairings: Pairings; port: number }> {
  const identity = loadOrCreateIdentity(home);
  const log = (): void => {};
  const parts: { links?: LinkManager; pairings?: Pairings } = {};
  const registry = new PeerRegistry({ id: identity.id, name: 'here' }, new PeerStore(home, log), {
    link: (id) => parts.links!.state(id),
    pairing: (id) => parts.pairings!.state(id),
  }, log);
  const links = new LinkManager(
    {
      identity,
      name: 'here',
      log,
      serveChannels: () => ({ open: () => { throw new Error('no peer is paired in this test'); } }),
      control: (p, link, m) => parts.pairings!.control(p, link, m),
      closed: (p, reason) => parts.pairings!.linkClosed(p, reason),
      pairingBusy: (id) => parts.pairings!.busy(id),
    },
    registry,
  );
  const pairings = new Pairings({ self: { id: identity.id, name: 'here' }, log }, registry, links);
  Object.assign(parts, { links, pairings });
  await links.listen({ host: '127.0.0.1', port: 0 });
  return { registry, links, pairings, port: links.port };
}

/** A machine with a fresh identity that says HELLO and waits for the agent's; the socket stays open. */
async function stranger(port: number, n: number): Promise<TLSSocket> {
  const me = createSelfSignedIdentity('vOS agent');
  // From 20 loopback addresses: an address may hold only a few unidentified connections and
  // unpaired links at a time.
  const socket = tlsConnect({ socket: netConnect({ host: '127.0.0.1', port, localAddress: `127.0.3.${1 + (n % 20)}` }), key: me.keyPem, cert: me.certPem, rejectUnauthorized: false, minVersion: 'TLSv1.3' });
  const decoder = new LinkFrameDecoder({ maxJsonBytes: 1 << 20 });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.once('secureConnect', () => {
      socket.write(encodeLinkFrame({ kind: 'hello', stream: 0, json: { v: LINK_PROTOCOL_VERSION, id: deviceIdOf(me.certDer), name: `stranger${n}`, version: '0', os: 'Linux', arch: 'x64', port: 0 } }));
    });
    socket.on('data', (chunk) => {
      if (decoder.push(chunk).some((f) => f.kind === 'hello')) resolve();
    });
  });
  socket.on('error', () => {});
  return socket;
}

describe('strangers', () => {
  const cleanup: Array<() => void | Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('a flood of HELLOs from fresh identities leaves the peer table bounded', async () => {
    const home = mkdtempSync(join(tmpdir(), 'vos-strangers-'));
    cleanup.push(() => rmSync(home, { recursive: true, force: true }));
    const a = await agent(home);
    cleanup.push(() => a.links.close());

    // 200 that come and go (20 at a time): each is forgotten when its link closes.
    let most = 0;
    for (let batch = 0; batch < 10; batch++) {
      const sockets = await Promise.all(Array.from({ length: 20 }, (_, i) => stranger(a.port, batch * 20 + i)));
      await waitFor('the batch to be linked', () => a.registry.all().length >= 20, 10_000);
      most = Math.max(most, a.registry.all().length);
      for (const s of sockets) s.destroy();
      await waitFor('the batch to be forgotten', () => a.registry.all().length === 0, 10_000);
    }
    expect(most).toBeLessThanOrEqual(40);

    // 100 that stay: at most MAX_STRANGER_LINKS links are kept, the oldest close.
    const staying: TLSSocket[] = [];
    cleanup.push(() => staying.forEach((s) => s.destroy()));
    let closed = 0;
    for (let i = 0; i < 100; i++) {
      const s = await stranger(a.port, 1000 + i);
      s.once('close', () => closed++);
      staying.push(s);
    }
    await waitFor('the oldest links to close', () => closed >= 100 - MAX_STRANGER_LINKS, 10_000);
    await waitFor('the table to shrink', () => a.registry.all().length <= MAX_STRANGER_LINKS, 10_000);
    // The newest are the ones kept.
    expect(staying.slice(-10).every((s) => !s.destroyed)).toBe(true);
  }, 120_000);
});
