/**
 * The local API of a real `vos daemon` process over its Unix socket: permissions, the hello
 * exchange, hostile frames, viewers that stop reading, and agents side by side.
 */
import { connect, type Socket } from 'node:net';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrame, FrameDecoder } from '../../src-main/base/frame-codec.js';
import { MAX_AGENT_FRAME_BYTES, MAX_CLIENT_FRAME_BYTES } from '../../src-main/api/protocol.js';
import { processAlive as alive, startDaemon, tempHome, vos, waitFor, type DaemonHandle } from '../helpers/agent-process.js';

const daemons: DaemonHandle[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(daemons.splice(0).map((d) => d.stop()));
});

async function daemon(options: Parameters<typeof startDaemon>[0] = {}): Promise<DaemonHandle> {
  const d = await startDaemon(options);
  daemons.push(d);
  return d;
}

/** A raw connection that records every frame the agent sends, and whether it closed. */
class RawClient {
  readonly frames: Array<Record<string, unknown>> = [];
  closed = false;
  private readonly decoder = new FrameDecoder(MAX_AGENT_FRAME_BYTES);
  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const f of this.decoder.push(chunk)) this.frames.push(f as Record<string, unknown>);
    });
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => {});
  }
  static async open(path: string): Promise<RawClient> {
    const s = connect(path);
    sockets.push(s);
    await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
    return new RawClient(s);
  }
  send(value: unknown): void {
    this.socket.write(encodeFrame(value));
  }
  async hello(): Promise<void> {
    this.send({ t: 'hello', protocol: 1, client: 'raw' });
    await waitFor('hello reply', () => this.frames.find((f) => f.t === 'hello'));
  }
  reply(id: number): Record<string, unknown> | undefined {
    return this.frames.find((f) => f.t === 'res' && f.id === id);
  }
}

describe('local API', () => {
  it('keeps its socket 0600 in a 0700 state directory', async () => {
    const d = await daemon();
    expect(statSync(d.home).mode & 0o777).toBe(0o700);
    const st = statSync(d.paths.socket);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(statSync(d.paths.lock).mode & 0o777).toBe(0o600);
  });

  it('answers requests only after hello, and refuses another protocol version', async () => {
    const d = await daemon();
    const early = await RawClient.open(d.paths.socket);
    early.send({ t: 'req', id: 1, method: 'session.list', params: {} });
    await waitFor('reply', () => early.reply(1));
    expect(early.reply(1)).toMatchObject({ ok: false, error: { code: 'not_ready' } });

    const future = await RawClient.open(d.paths.socket);
    future.send({ t: 'hello', protocol: 99, client: 'future' });
    await waitFor('the connection to close', () => future.closed);
    expect(future.frames[0]).toMatchObject({ t: 'error', error: { code: 'unsupported_protocol' } });
  });

  it('answers a bad request with an error and keeps the connection', async () => {
    const d = await daemon();
    const c = await RawClient.open(d.paths.socket);
    await c.hello();
    c.send({ t: 'req', id: 1, method: 'no.such.method', params: {} });
    c.send({ t: 'req', id: 2, method: 'session.create', params: { command: 42 } });
    c.send({ t: 'req', id: 3, method: 'session.screen', params: { id: 'nope' } });
    c.send({ t: 'req', id: 4, method: 'session.list', params: {} });
    await waitFor('four replies', () => c.reply(4));
    expect(c.reply(1)).toMatchObject({ ok: false, error: { code: 'unknown_method' } });
    expect(c.reply(2)).toMatchObject({ ok: false, error: { code: 'invalid_params', message: '"command" must be a string' } });
    expect(c.reply(3)).toMatchObject({ ok: false, error: { code: 'unknown_session' } });
    expect(c.reply(4)).toMatchObject({ ok: true, result: [] });
    expect(c.closed).toBe(false);
  });

  it('closes only the connection that sends a malformed or oversized frame, and keeps serving everyone else', async () => {
    const d = await daemon();
    const bystander = await d.connect();
    const session = await bystander.request('session.create', { command: 'cat' });

    const notJson = await RawClient.open(d.paths.socket);
    await notJson.hello();
    const body = Buffer.from('{"t":"req", this is not json');
    const head = Buffer.alloc(4);
    head.writeUInt32BE(body.length);
    notJson.socket.write(Buffer.concat([head, body]));

    const huge = await RawClient.open(d.paths.socket);
    const bigHead = Buffer.alloc(4);
    bigHead.writeUInt32BE(MAX_CLIENT_FRAME_BYTES + 1);
    huge.socket.write(bigHead);

    const wrongShape = await RawClient.open(d.paths.socket);
    wrongShape.send([1, 2, 3]);

    const garbage = await RawClient.open(d.paths.socket);
    garbage.socket.write(Buffer.from([0, 0, 0, 5, 0xff, 0xfe, 0x00, 0x01, 0x02]));

    const halfFrame = await RawClient.open(d.paths.socket);
    halfFrame.socket.write(Buffer.from([0, 0, 1, 0, 0x7b])); // promises 256 bytes, sends 1, hangs up
    halfFrame.socket.end();

    for (const [c, code] of [
      [notJson, 'bad_frame'],
      [huge, 'frame_too_large'],
      [wrongShape, 'bad_frame'],
      [garbage, 'bad_frame'],
    ] as const) {
      await waitFor(`${code} to close its connection`, () => c.closed);
      expect(c.frames.at(-1)).toMatchObject({ t: 'error', error: { code } });
    }
    // Everyone else is still served: the old client, and a new one.
    await bystander.request('session.input', { id: session.id, data: 'still alive\r' });
    await bystander.request('session.wait', { id: session.id, pattern: 'still alive', timeoutMs: 5000 });
    const fresh = await d.connect();
    expect((await fresh.request('session.list', {})).map((s) => s.id)).toEqual([session.id]);
    expect(d.proc.exitCode).toBeNull();
  });

  it('does not let a viewer that stops reading stall the agent or the program', async () => {
    const d = await daemon();
    const control = await d.connect();
    const session = await control.request('session.create', {
      command: 'sh',
      args: ['-c', 'head -c 60000000 /dev/zero | tr "\\0" "x"; echo; echo flood-done; sleep 30'],
    });
    const stuck = await RawClient.open(d.paths.socket);
    await stuck.hello();
    stuck.send({ t: 'req', id: 1, method: 'session.attach', params: { id: session.id } });
    await waitFor('attach reply', () => stuck.reply(1));
    // Nothing of the session comes before the attach reply (the batch in flight is in its snapshot).
    const firstOutput = stuck.frames.findIndex((f) => f.event === 'session.output');
    expect(firstOutput === -1 || firstOutput > stuck.frames.findIndex((f) => f.t === 'res'), 'no output before the attach reply').toBe(true);
    stuck.socket.pause(); // never reads again

    const t0 = Date.now();
    await control.request('session.wait', { id: session.id, pattern: 'flood-done', timeoutMs: 60_000 });
    const floodMs = Date.now() - t0;
    // The agent answers promptly while the stuck viewer's data piles up nowhere.
    const p0 = Date.now();
    await control.request('session.list', {});
    expect(Date.now() - p0).toBeLessThan(1000);
    const status = (await import('node:fs')).readFileSync(`/proc/${d.proc.pid}/status`, 'utf8');
    expect(Number(/VmRSS:\s+(\d+)/.exec(status)![1])).toBeLessThan(400 * 1024);
    expect(floodMs).toBeLessThan(60_000);

    // When the viewer reads again it gets what was queued before it fell behind (a few MiB, not
    // the 60 MB flood), then a fresh snapshot, then live output.
    // (One taken in the moment between the attach reply and the pause may come first: what was
    // held while its snapshot was taken is not sent; it gets the screen again instead.)
    stuck.socket.resume();
    const isResync = (f: (typeof stuck.frames)[number]): boolean => f.event === 'session.resync' && String(f.snapshot).includes('flood-done');
    await waitFor('a resync with the end of the flood', () => stuck.frames.find(isResync), 20_000);
    const resyncAt = stuck.frames.findIndex(isResync);
    const outputBefore = stuck.frames
      .slice(0, resyncAt)
      .reduce((n, f) => n + (f.event === 'session.output' ? String(f.data).length : 0), 0);
    expect(outputBefore).toBeLessThan(20_000_000);
  });

  it('runs two agents side by side with separate state directories', async () => {
    const a = await daemon({ args: ['--name', 'alpha'] });
    const b = await daemon({ args: ['--name', 'beta'] });
    const ca = await a.connect();
    const cb = await b.connect();
    expect((await ca.request('agent.info', {})).name).toBe('alpha');
    expect((await cb.request('agent.info', {})).name).toBe('beta');
    const s = await ca.request('session.create', { command: 'sleep', args: ['30'] });
    expect((await ca.request('session.list', {})).map((x) => x.id)).toEqual([s.id]);
    expect(await cb.request('session.list', {})).toEqual([]);
  });

  it('refuses a second agent on the same state directory, and takes over after one that was killed', async () => {
    const home = tempHome();
    const first = await daemon({ home });
    const second = await vos(home, ['daemon']);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/already running/);
    // SIGKILL leaves the lock and the socket behind; the next agent must not be fooled by them.
    first.proc.kill('SIGKILL');
    await waitFor('the first agent to die', () => first.proc.exitCode !== null || first.proc.signalCode !== null);
    expect(statSync(first.paths.socket).isSocket()).toBe(true);
    const third = await daemon({ home });
    const c = await third.connect();
    expect(await c.request('session.list', {})).toEqual([]);
  });

  it('leaves its sessions\' programs running when the agent is killed, and ends them on kill', async () => {
    const d = await daemon();
    const c = await d.connect();
    const s = await c.request('session.create', { command: 'sleep', args: ['1000'] });
    // The listed pid is the program's once the agent has found it in the pod (until then it is
    // vos-init's; it may be found before session.create answers).
    const pid = await waitFor('the program\'s pid', async () => {
      const info = (await c.request('session.list', {}))[0]!;
      return commOf(info.pid) === 'sleep' ? info.pid : null;
    });
    d.proc.kill('SIGKILL');
    await waitFor('the agent to die', () => d.proc.exitCode !== null || d.proc.signalCode !== null);
    expect(alive(pid)).toBe(true);
    const again = await daemon({ home: d.home });
    const c2 = await again.connect();
    const [found] = await c2.request('session.list', {});
    expect(found).toMatchObject({ id: s.id, name: s.name, state: 'running' });
    await c2.request('session.kill', { id: s.id, signal: 'SIGKILL' });
    await waitFor('the program to end', () => !alive(pid) && !alive(s.pid), 5000);
  });

  function commOf(pid: number): string | null {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      return null;
    }
  }

  it('treats a lock file holding garbage or a dead pid as stale', async () => {
    const home = tempHome();
    writeFileSync(`${home}/agent.pid`, '{"pid": 999999999, "start": "1"}');
    const d = await daemon({ home });
    expect(JSON.parse((await import('node:fs')).readFileSync(d.paths.lock, 'utf8')).pid).toBe(d.proc.pid);
  });
});
