/**
 * Discovery between real agents on simulated hosts (network namespaces, real mDNS over veth
 * links): seen both ways, a goodbye noticed at once, a killed agent noticed within 15 s, and
 * manual addition where multicast does not work. Needs root (ip netns); skips otherwise.
 */
import { describe, expect, it } from 'vitest';
import { SimLab, multiHostSkipReason, type HostAgent } from '../helpers/community.js';

const unavailable = multiHostSkipReason('test/community/discovery.test.ts');

describe.skipIf(unavailable !== null)('discovery between machines', () => {
  const lab = new SimLab();

  async function start(count: number): Promise<HostAgent[]> {
    lab.network(count);
    const agents: HostAgent[] = [];
    for (let i = 0; i < count; i++) agents.push(await lab.agent(i, `m${i + 1}`));
    return agents;
  }

  it('two agents find each other, with what they say about themselves; a goodbye is seen at once', async () => {
    const [a, b] = await start(2);
    const seenByA = await a!.waitPeer('m2', (p) => p.name === 'm2' && p.online);
    await b!.waitPeer('m1', (p) => p.name === 'm1' && p.online);
    expect(seenByA.paired).toBe(false);
    expect(seenByA.os).toBe('Linux');
    expect(seenByA.arch).toBe(process.arch);
    // mDNS is public on the LAN: kernel and load are for paired machines only.
    expect(seenByA.kernel).toBe('');
    expect(seenByA.load).toBeNull();
    expect(seenByA.addresses).toContain(b!.address);
    expect(seenByA.shortId).toMatch(/^[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$/);
    // Nobody lists itself.
    expect((await a!.peers()).map((p) => p.name)).toEqual(['m2']);

    await b!.kill('SIGTERM');
    const t0 = Date.now();
    await a!.waitPeer('m2 gone (goodbye)', (p) => p.name === 'm2' && !p.online, 3000);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('three agents all see each other; one killed without a goodbye is gone within 15 s', async () => {
    const [a, b, c] = await start(3);
    for (const [x, others] of [
      [a!, ['m2', 'm3']],
      [b!, ['m1', 'm3']],
      [c!, ['m1', 'm2']],
    ] as const) {
      for (const name of others) await x.waitPeer(name, (p) => p.name === name && p.online);
    }
    await c!.kill('SIGKILL');
    const t0 = Date.now();
    await Promise.all([
      a!.waitPeer('m3 gone', (p) => p.name === 'm3' && !p.online, 16_000),
      b!.waitPeer('m3 gone', (p) => p.name === 'm3' && !p.online, 16_000),
    ]);
    const took = Date.now() - t0;
    console.log(`a SIGKILLed agent was noticed gone after ${took} ms`);
    expect(took).toBeLessThan(15_000);
    // The others still see each other.
    expect((await a!.peers()).find((p) => p.name === 'm2')?.online).toBe(true);
  }, 40_000);

  it('peer add works where multicast does not, and the address is remembered', async () => {
    const [a, b] = await start(2);
    lab.net!.blockMulticast(lab.net!.hosts[0]!);
    lab.net!.blockMulticast(lab.net!.hosts[1]!);
    // Without multicast, neither finds the other by itself.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await a!.peers()).toEqual([]);

    const added = await a!.vos(['peer', 'add', b!.address]);
    expect(added.stderr).toBe('');
    expect(added.code).toBe(0);
    expect(added.stdout).toMatch(/^added m2 \([A-Z2-7-]+\) at 10\.231\.0\.2:47470/);
    const peer = await a!.waitPeer('m2 linked', (p) => p.name === 'm2' && p.link === 'up');
    expect(peer.addresses[0]).toBe(b!.address);
    // The other side learns of the link too (unpaired: it may do nothing yet but ask to pair).
    await b!.waitPeer('m1 linked', (p) => p.name === 'm1' && p.link === 'up');

    const nobody = await a!.vos(['peer', 'add', '10.231.0.99:47470']);
    expect(nobody.code).toBe(1);
    expect(nobody.stderr).toMatch(/cannot link to 10\.231\.0\.99:47470/);
    const bad = await a!.vos(['peer', 'add', 'not an address']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/is not HOST:PORT/);
  }, 30_000);
});
