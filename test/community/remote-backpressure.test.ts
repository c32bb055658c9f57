/**
 * A remote viewer that stops reading (a stopped `vos attach ID@peer`) must not grow the viewer's
 * agent without bound (security review, issue 15 item 8): it grew by 260 MiB in 20 s. The
 * viewer-side agent skips its output while it lags and resynchronises it with a fresh snapshot
 * once it drains, as a local viewer is. Two real agents on loopback, paired through the API.
 */
import { connect, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src-main/api/client.js';
import { encodeFrame, FrameDecoder } from '../../src-main/base/frame-codec.js';
import { MAX_AGENT_FRAME_BYTES, PROTOCOL_VERSION } from '../../src-main/api/protocol.js';
import { startDaemon, waitFor, type DaemonHandle } from '../helpers/agent-process.js';

const daemons: DaemonHandle[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(daemons.splice(0).map((d) => d.stop()));
});

const LOOPBACK = { VOS_MDNS: '0', VOS_LISTEN: '127.0.0.1:0' };

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Two agents on loopback, `a` paired with `b`; returns their clients too. */
export async function pairedOnLoopback(): Promise<{ a: DaemonHandle; b: DaemonHandle; ca: ApiClient; cb: ApiClient }> {
  const a = await startDaemon({ args: ['--name', 'alpha'], env: LOOPBACK });
  daemons.push(a);
  const b = await startDaemon({ args: ['--name', 'beta'], env: LOOPBACK });
  daemons.push(b);
  const ca = await a.connect();
  const cb = await b.connect();
  const listen = (await cb.request('agent.info', {})).listen!;
  await ca.request('peer.add', { address: listen });
  await waitFor('alpha to see beta', async () => (await ca.request('peer.list', {})).some((p) => p.name === 'beta' && p.online), 15_000, 100);
  const { code } = await ca.request('pair.request', { peer: 'beta' });
  const waiting = ca.request('pair.wait', { peer: 'beta', timeoutMs: 20_000 });
  await waitFor('the request on beta', async () => (await cb.request('pair.pending', {})).length > 0);
  await cb.request('pair.accept', { peer: 'alpha', code });
  // Both users confirm: alpha's user checks that beta shows the same code.
  await ca.request('pair.confirm', { peer: 'beta', code });
  await waiting;
  return { a, b, ca, cb };
}

describe('a remote viewer that does not read', () => {
  it('does not grow the viewing agent, and is resynchronised once it reads again', async () => {
    const { a, b, cb } = await pairedOnLoopback();
    // A session on beta that floods, viewed from alpha.
    const s = await cb.request('session.create', { command: 'sh', args: ['-c', 'while :; do head -c 1000000 /dev/urandom | od -An -tx1; done'] });
    const ref = `${s.id}@beta`;
    const socket = connect(a.paths.socket);
    sockets.push(socket);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const frames: Array<Record<string, unknown>> = [];
    const decoder = new FrameDecoder(MAX_AGENT_FRAME_BYTES);
    socket.on('data', (chunk: Buffer) => {
      for (const f of decoder.push(chunk)) frames.push(f as Record<string, unknown>);
    });
    socket.on('error', () => {});
    socket.write(encodeFrame({ t: 'hello', protocol: PROTOCOL_VERSION, client: 'raw' }));
    socket.write(encodeFrame({ t: 'req', id: 1, method: 'session.attach', params: { id: ref } }));
    await waitFor('the attach reply', () => frames.find((f) => f.t === 'res' && f.id === 1), 20_000);
    socket.pause(); // stops reading, as a stopped `vos attach` does

    const pid = a.proc.pid!;
    const before = rssBytes(pid);
    let peak = before;
    const started = Date.now();
    while (Date.now() - started < 10_000) {
      peak = Math.max(peak, rssBytes(pid));
      await new Promise((r) => setTimeout(r, 100));
    }
    const grownMiB = (peak - before) / 2 ** 20;
    console.log(`stopped remote viewer: alpha grew ${grownMiB.toFixed(0)} MiB in 10 s (RSS ${(before / 2 ** 20).toFixed(0)} -> ${(peak / 2 ** 20).toFixed(0)} MiB)`);
    // Reading again: what was queued for it comes, then a fresh screen, then live output.
    frames.length = 0;
    socket.resume();
    const resync = await waitFor('a resync', () => frames.findIndex((f) => f.t === 'event' && f.event === 'session.resync') + 1 || null, 30_000).catch(() => null);
    const queued = frames.slice(0, resync ? resync - 1 : frames.length).reduce((n, f) => n + (f.event === 'session.output' ? String(f.data).length : 0), 0);
    console.log(`then ${(queued / 2 ** 20).toFixed(1)} MiB of output were still queued for it; resynchronised: ${resync !== null}`);
    expect(grownMiB).toBeLessThan(32);
    expect(queued).toBeLessThan(8 * 2 ** 20);
    expect(resync).not.toBeNull();
    const live = frames.length;
    await waitFor('live output after it', () => frames.slice(live).find((f) => f.t === 'event' && f.event === 'session.output'), 10_000);
    await cb.request('session.kill', { id: s.id, signal: 'KILL' });
    void b;
  }, 120_000);
});
