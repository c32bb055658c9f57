/**
 * Cheap requests that cost a lot (security review, issue 15 item 9): requests in flight are
 * limited per connection, work for a client that left is dropped, and a resize is bounded for
 * peers as for local clients (checkParams runs for both; see validate.test.ts).
 */
import { connect, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrame, FrameDecoder } from '../../src-main/base/frame-codec.js';
import { MAX_AGENT_FRAME_BYTES, PROTOCOL_VERSION } from '../../src-main/api/protocol.js';
import { MAX_IN_FLIGHT } from '../../src-main/agent/api-dispatcher.js';
import { startDaemon, waitFor, type DaemonHandle } from '../helpers/agent-process.js';

const daemons: DaemonHandle[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(daemons.splice(0).map((d) => d.stop()));
});

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

async function rawSocket(path: string): Promise<{ socket: Socket; frames: Array<Record<string, unknown>> }> {
  const socket = connect(path);
  sockets.push(socket);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const frames: Array<Record<string, unknown>> = [];
  const decoder = new FrameDecoder(MAX_AGENT_FRAME_BYTES);
  socket.on('data', (chunk: Buffer) => {
    for (const f of decoder.push(chunk)) frames.push(f as Record<string, unknown>);
  });
  socket.on('error', () => {});
  return { socket, frames };
}

/** A session whose scrollback is full of coloured cells: each snapshot of it is megabytes. */
async function heavySession(d: DaemonHandle): Promise<string> {
  const c = await d.connect();
  // Every cell its own colour: the serialized screen is ~20 bytes a cell.
  const script =
    "let s='';for(let i=0;i<200;i++)s+='\\x1b[38;5;'+(i%200)+'m'+String.fromCharCode(65+(i%26));" +
    "for(let l=0;l<2500;l++)process.stdout.write(s+'\\r\\n');process.stdout.write('FILLED\\r\\n');setInterval(()=>{},1e6)";
  const info = await c.request('session.create', { command: process.execPath, args: ['-e', script], cols: 200, rows: 50 });
  await waitFor('the output to fill the scrollback', async () => (await c.request('session.screen', { id: info.id })).lines.includes('FILLED'), 90_000, 250);
  return info.id;
}

describe('requests that cost a lot', () => {
  it('drops the snapshots of 200 attach requests whose client left, and keeps answering', async () => {
    const d = await startDaemon();
    daemons.push(d);
    const id = await heavySession(d);
    const pid = d.proc.pid!;
    const before = rssBytes(pid);
    const { socket, frames } = await rawSocket(d.paths.socket);
    socket.write(encodeFrame({ t: 'hello', protocol: PROTOCOL_VERSION, client: 'raw' }));
    await waitFor('hello', () => frames.find((f) => f.t === 'hello'));
    const burst = Buffer.concat(Array.from({ length: 200 }, (_, i) => encodeFrame({ t: 'req', id: i + 1, method: 'session.attach', params: { id } })));
    await new Promise<void>((resolve) => socket.write(burst, () => resolve()));
    socket.destroy(); // abandoned at once

    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 20);
    try {
      const c = await d.connect();
      const started = Date.now();
      await c.request('session.list', {});
      const listMs = Date.now() - started;
      // Whatever work is left for the gone client, it is done within this (then nothing is left).
      const settleStart = Date.now();
      let idle = true;
      await waitFor('the agent to be idle', async () => {
        const t = Date.now();
        await c.request('session.list', {});
        return Date.now() - t < 200;
      }, 30_000).catch(() => (idle = false));
      const busyMs = Date.now() - settleStart;
      clearInterval(sampler);
      const grownMiB = (peak - before) / 2 ** 20;
      console.log(`abandoned attaches: session.list answered in ${listMs} ms; busy ${idle ? busyMs : '> 30000'} ms more; RSS grew ${grownMiB.toFixed(0)} MiB`);
      expect(idle).toBe(true);
      expect(listMs).toBeLessThan(2000);
      expect(grownMiB).toBeLessThan(256);
    } finally {
      clearInterval(sampler);
    }
  }, 120_000);

  it(`refuses requests past ${MAX_IN_FLIGHT} in flight on one connection, and serves the others`, async () => {
    const d = await startDaemon();
    daemons.push(d);
    const c = await d.connect();
    const s = await c.request('session.create', { command: 'sh', args: ['-c', 'sleep 1000'] });
    const { socket, frames } = await rawSocket(d.paths.socket);
    socket.write(encodeFrame({ t: 'hello', protocol: PROTOCOL_VERSION, client: 'raw' }));
    await waitFor('hello', () => frames.find((f) => f.t === 'hello'));
    // Waits that never end by themselves: each holds its place until its timeout.
    const n = MAX_IN_FLIGHT + 10;
    const burst = Buffer.concat(
      Array.from({ length: n }, (_, i) => encodeFrame({ t: 'req', id: i + 1, method: 'session.wait', params: { id: s.id, pattern: 'never-shown', timeoutMs: 60_000 } })),
    );
    socket.write(burst);
    const refused = await waitFor('the requests past the limit to be refused', () => {
      const r = frames.filter((f) => f.t === 'res' && (f.error as { code?: string } | undefined)?.code === 'busy');
      return r.length === 10 ? r : null;
    });
    expect(refused.map((f) => f.id)).toEqual(Array.from({ length: 10 }, (_, i) => MAX_IN_FLIGHT + i + 1));
    // Input is not counted: a burst of it is taken whole, even now.
    const inputs = Buffer.concat(
      Array.from({ length: 40 }, (_, i) => encodeFrame({ t: 'req', id: 1000 + i, method: 'session.input', params: { id: s.id, data: 'x' } })),
    );
    socket.write(inputs);
    const answered = await waitFor('the inputs to be answered', () => {
      const r = frames.filter((f) => f.t === 'res' && (f.id as number) >= 1000);
      return r.length === 40 ? r : null;
    });
    expect(answered.every((f) => f.ok === true)).toBe(true);
    // Another connection is not held up by this one.
    expect((await c.request('session.list', {})).length).toBe(1);
  }, 60_000);

  it('asks again by itself when the agent says busy, and gets the answer once there is room', async () => {
    const d = await startDaemon();
    daemons.push(d);
    const c = await d.connect();
    const s = await c.request('session.create', { command: 'sh', args: ['-c', 'read x; echo "$x$x"; sleep 1000'] });
    // Fill this connection: every place is held by a wait for a line the session does not show yet.
    const waits = Array.from({ length: MAX_IN_FLIGHT }, () => c.request('session.wait', { id: s.id, pattern: 'GOGO', timeoutMs: 50_000 }));
    let listed: number | null = null;
    let failed: unknown = null;
    const list = c.request('session.list', {}).then(
      (l) => (listed = l.length),
      (err: unknown) => (failed = err),
    );
    // Refused with busy and asked again, for as long as the waits hold the places.
    const other = await d.connect();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect({ listed, failed }).toEqual({ listed: null, failed: null });
    await other.request('session.input', { id: s.id, data: 'GO\n' });
    await Promise.all(waits);
    await list;
    expect(failed).toBeNull();
    expect(listed).toBe(1);
    other.close();
  }, 60_000);
});
