/**
 * Sessions outlive the agent: each program runs under a terminal host (`vos-init host`) that
 * keeps its pty and a journal of its output. The agent is stopped or killed while programs run
 * (and flood output); a new agent of the same state directory finds them with their screens,
 * and viewers, checkpoints and `vos kill` work on them. Real agents, real ptys.
 */
import { connect } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src-main/api/client.js';
import { UNPRIVILEGED, endHosts, hostPids, startDaemon, vos, waitFor, processAlive as alive, type DaemonHandle } from '../helpers/agent-process.js';

const daemons: DaemonHandle[] = [];
const scratch: string[] = [];

afterEach(async () => {
  await Promise.all(daemons.splice(0).map((d) => d.stop({ keepHome: true })));
  const dirs = scratch.splice(0);
  for (const h of dirs) await endHosts(h);
  for (const h of dirs) rmSync(h, { recursive: true, force: true });
});

async function daemon(options: Parameters<typeof startDaemon>[0] = {}): Promise<DaemonHandle> {
  const d = await startDaemon({ ...options, env: { VOS_MDNS: '0', VOS_LISTEN: 'none', ...options.env } });
  daemons.push(d);
  if (!scratch.includes(d.home)) scratch.push(d.home);
  return d;
}

async function dies(d: DaemonHandle, signal: NodeJS.Signals): Promise<void> {
  d.proc.kill(signal);
  await waitFor('the agent to end', () => d.proc.exitCode !== null || d.proc.signalCode !== null, 15_000);
}

/** The text of a viewer's snapshot (screen and scrollback), escape sequences taken out. */
async function snapshotLines(c: ApiClient, id: string): Promise<string[]> {
  const { snapshot } = await c.request('session.attach', { id });
  await c.request('session.detach', { id });
  const plain = snapshot.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\x1b[()][0-9A-Za-z]/g, '');
  return plain.split(/\r?\n/).map((l) => l.trimEnd());
}

/** The numbers of the lines "n N" in `lines`, in order. */
function numbered(lines: string[]): number[] {
  return lines.map((l) => /^n (\d+)$/.exec(l)).filter((m) => m !== null).map((m) => Number(m![1]));
}

/** Checks that `nums` ends with `last` and holds at least `atLeast` consecutive numbers before it. */
function expectTail(nums: number[], last: number, atLeast: number): void {
  expect(nums.at(-1)).toBe(last);
  const tail = nums.slice(-atLeast);
  expect(tail.length).toBe(atLeast);
  tail.forEach((n, i) => expect(n).toBe(last - atLeast + 1 + i));
}

const LINES = 120_000;
/** Prints LINES numbered lines as fast as it can, then DONE, then waits. */
const FLOOD = ['-c', `i=1; while [ $i -le ${LINES} ]; do echo "n $i"; i=$((i+1)); done; echo DONE; exec sleep 1000`];

describe('sessions outlive the agent', () => {
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`a session flooding output runs on when the agent gets ${signal}; the next agent shows its last output exactly`, async () => {
      const d = await daemon();
      const c = await d.connect();
      const s = await c.request('session.create', { command: 'sh', args: FLOOD, name: 'flood' });
      await c.request('session.wait', { id: s.id, pattern: '^n \\d{4,}', timeoutMs: 30_000 });
      await dies(d, signal);
      expect(alive(s.pid)).toBe(true);

      const again = await daemon({ home: d.home });
      const c2 = await again.connect();
      const [found] = await c2.request('session.list', {});
      expect(found).toMatchObject({ id: s.id, name: 'flood', state: 'running', command: 'sh' });
      expect(found!.startedAt).toBe(s.startedAt);
      await c2.request('session.wait', { id: s.id, pattern: '^DONE$', timeoutMs: 60_000 });
      const lines = await snapshotLines(c2, s.id);
      expectTail(numbered(lines), LINES, 9_000);
      expect(lines.filter((l) => l).at(-1)).toBe('DONE');
    }, 180_000);
  }

  it('a viewer attaches to an adopted session and types into it; vos kill ends it', async () => {
    const d = await daemon();
    const c = await d.connect();
    const s = await c.request('session.create', { command: 'sh', name: 'shell' });
    await c.request('session.wait', { id: s.id, pattern: '^[$#]', timeoutMs: 10_000 }).catch(async (e) => {
      throw new Error(`${e}: ${JSON.stringify(await c.request('session.screen', { id: s.id }))}`);
    });
    await c.request('session.input', { id: s.id, data: 'echo before-$((6*7))\r' });
    await c.request('session.wait', { id: s.id, pattern: '^before-42', timeoutMs: 10_000 }).catch(async (e) => {
      throw new Error(`${e}: ${JSON.stringify(await c.request('session.screen', { id: s.id }))}`);
    });
    await dies(d, 'SIGTERM');

    const again = await daemon({ home: d.home });
    const c2 = await again.connect();
    const { snapshot } = await c2.request('session.attach', { id: s.id, cols: 100, rows: 30 });
    expect(snapshot).toContain('before-42');
    await c2.request('session.input', { id: s.id, data: 'echo after-$((7*7)) $(stty size)\r' });
    await c2.request('session.wait', { id: s.id, pattern: '^after-49 30 100', timeoutMs: 10_000 });
    const killed = await vos(d.home, ['kill', s.id]);
    expect(killed.code).toBe(0);
    await waitFor('the session to end', async () => (await c2.request('session.list', {}))[0]!.state === 'exited', 10_000);
    expect(alive(s.pid)).toBe(false);
    await c2.request('session.remove', { id: s.id });
    await waitFor('its terminal host to end', () => hostPids(d.home).length === 0, 10_000);
    expect(existsSync(join(d.home, 'sessions', `${s.id}.json`))).toBe(false);
  }, 60_000);

  it('checkpoints an adopted session', async () => {
    const d = await daemon();
    const c = await d.connect();
    const s = await c.request('session.create', { command: 'sh', args: ['-c', 'i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.1; done'] });
    await c.request('session.wait', { id: s.id, pattern: 'tick 3', timeoutMs: 10_000 });
    await dies(d, 'SIGKILL');
    const again = await daemon({ home: d.home });
    const c2 = await again.connect();
    const out = join(d.home, 'adopted.vosimg');
    const result = await c2.request('session.checkpoint', { id: s.id, out });
    expect(result.file).toBe(out);
    expect(existsSync(out)).toBe(true);
    expect((await c2.request('session.list', {}))[0]!.state).toBe('running');
  }, 60_000);

  it('vos daemon stop stops the agent and leaves the session running', async () => {
    const d = await daemon();
    const c = await d.connect();
    const s = await c.request('session.create', { command: 'sleep', args: ['1000'] });
    c.close();
    const stopped = await vos(d.home, ['daemon', 'stop']);
    expect(stopped.code).toBe(0);
    expect(stopped.stdout).toMatch(/agent stopped .*sessions keep running/);
    await waitFor('the agent to exit', () => d.proc.exitCode !== null, 10_000);
    expect(d.proc.exitCode).toBe(0);
    expect(alive(s.pid)).toBe(true);
    const again = await daemon({ home: d.home });
    const ls = await vos(again.home, ['ls']);
    expect(ls.stdout).toMatch(new RegExp(`${s.id}\\s+sleep\\s+running`));
  }, 60_000);

  it('a program printing while no agent runs is not blocked, and its host keeps the last 4 MiB', async () => {
    const dir = mkdtempSync('/tmp/vos-flood-');
    scratch.push(dir);
    const counter = join(dir, 'counter');
    // Lines of 64 bytes; every 2000 lines the count goes to a file, where the test watches it.
    const program = `let i = 0; const pad = 'x'.repeat(54); for (;;) { i++; process.stdout.write('n ' + String(i).padStart(7, '0') + ' ' + pad + '\\n'); if (i % 2000 === 0) require('fs').writeFileSync(${JSON.stringify(counter)}, String(i)); }`;
    const d = await daemon();
    const c = await d.connect();
    const s = await c.request('session.create', { command: process.execPath, args: ['-e', program] });
    await waitFor('the program to print', () => existsSync(counter), 20_000);
    await dies(d, 'SIGKILL');
    const count = (): number => Number(readFileSync(counter, 'utf8') || 0);
    const at = count();
    // With nobody reading, 8 MiB more (twice the journal) must get through.
    await waitFor('the program to go on printing', () => count() > at + 8 * 16_384, 60_000, 100);
    expect(alive(s.pid)).toBe(true);

    // The host's journal, read straight from its socket: 4 MiB of whole, consecutive lines.
    const journal = await readJournal(join(d.home, 'pods', `${s.id}.term`));
    expect(journal.wrapped).toBe(true);
    expect(journal.bytes.length).toBe(4 * 1024 * 1024);
    const text = journal.bytes.toString('latin1');
    const lines = text.slice(text.indexOf('\n') + 1, text.lastIndexOf('\r\n')).split('\r\n');
    const nums = lines.map((l) => Number(/^n (\d{7}) x{54}$/.exec(l)?.[1] ?? NaN));
    expect(nums.every((n, i) => n === nums[0]! + i)).toBe(true);
    expect(lines.length).toBeGreaterThan(4 * 1024 * 1024 / 66 - 2);
  }, 120_000);

  it('a terminal host survives garbage on its socket and serves the next agent', async () => {
    const d = await daemon();
    const c = await d.connect();
    const s = await c.request('session.create', { command: 'sh', args: ['-c', 'echo ready; exec sleep 1000'] });
    await c.request('session.wait', { id: s.id, pattern: '^ready', timeoutMs: 10_000 });
    await dies(d, 'SIGKILL');
    const socket = join(d.home, 'pods', `${s.id}.term`);
    const garbage = [
      Buffer.from('GET / HTTP/1.1\r\n\r\n'),
      Buffer.from([16, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]), // INPUT claiming 4 GiB
      Buffer.from([17, 0, 0, 0, 4, 0, 0, 0, 0]), // RESIZE to 0 x 0
      Buffer.from([18, 0, 0, 0, 4, 0, 0, 1, 0]), // SIGNAL 256
      Buffer.from([19, 0, 0, 0, 3, 1, 2, 3]), // END with a payload
      Buffer.from([99, 0, 0, 0, 0]),
      Buffer.alloc(100_000, 0xab),
    ];
    for (const g of garbage) await sendAndWaitClose(socket, g);
    expect(hostPids(d.home).length).toBe(1);
    expect(alive(s.pid)).toBe(true);
    const again = await daemon({ home: d.home });
    const c2 = await again.connect();
    const [found] = await c2.request('session.list', {});
    expect(found).toMatchObject({ id: s.id, state: 'running' });
    expect((await c2.request('session.screen', { id: s.id })).lines[0]).toBe('ready');
  }, 60_000);

  it('an adopted session that ended meanwhile is listed as exited, with its status and screen', async () => {
    const d = await daemon();
    const c = await d.connect();
    const s = await c.request('session.create', { command: 'sh', args: ['-c', 'read x; echo bye $x; exit 7'] });
    await dies(d, 'SIGKILL');
    // No agent: type through the host's socket as an agent would.
    await sendAndWaitClose(join(d.home, 'pods', `${s.id}.term`), frame(16, Buffer.from('now\r')), 300);
    await waitFor('the program to end', () => !alive(s.pid), 10_000);
    const again = await daemon({ home: d.home });
    const c2 = await again.connect();
    const [found] = await c2.request('session.list', {});
    expect(found).toMatchObject({ id: s.id, state: 'exited', exit: { code: 7, signal: null } });
    expect((await c2.request('session.screen', { id: s.id })).lines.join('\n')).toContain('bye now');
  }, 60_000);
  it('the host of a session that ended goes once no agent can reach it (its state directory removed), not before', async () => {
    const d = await daemon();
    const c = await d.connect();
    const s = await c.request('session.create', { command: 'sh', args: ['-c', 'read x; exit 3'] });
    await dies(d, 'SIGKILL');
    const [host] = hostPids(d.home);
    expect(host).toBeGreaterThan(0);
    const socket = join(d.home, 'pods', `${s.id}.term`);
    await sendAndWaitClose(socket, frame(16, Buffer.from('\r')), 300);
    await waitFor('the program to end', () => !alive(s.pid), 10_000);
    // Its status waits for an agent: the host stays while its socket is there. It looks at its
    // socket every 5 s; past such a look, it still answers an agent.
    await new Promise((r) => setTimeout(r, 6000));
    expect(alive(host!)).toBe(true);
    await expect(readJournal(socket)).resolves.toMatchObject({ wrapped: false });
    // The state directory goes (a user's rm -rf): no agent can ever collect the status.
    rmSync(join(d.home, 'pods'), { recursive: true, force: true });
    await waitFor('the orphaned host to end', () => !alive(host!), 15_000);
  }, 60_000);
});

describe('sessions outlive the agent, as an ordinary user', () => {
  it.skipIf(process.getuid?.() !== 0)('an agent of an ordinary user is killed; the next one finds the session', async () => {
    const d = await daemon({ asUser: UNPRIVILEGED });
    const c = await d.connect();
    const s = await c.request('session.create', { command: 'sh', args: ['-c', 'echo as-$(id -u); exec sleep 1000'] });
    await c.request('session.wait', { id: s.id, pattern: `^as-${UNPRIVILEGED.uid}`, timeoutMs: 10_000 });
    await dies(d, 'SIGKILL');
    expect(alive(s.pid)).toBe(true);
    const again = await daemon({ home: d.home, asUser: UNPRIVILEGED });
    const c2 = await again.connect();
    const [found] = await c2.request('session.list', {});
    expect(found).toMatchObject({ id: s.id, state: 'running' });
    expect((await c2.request('session.screen', { id: s.id })).lines[0]).toBe(`as-${UNPRIVILEGED.uid}`);
  }, 60_000);
});

function frame(type: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(type, 0);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** Connects to a host, sends `data`, and waits until the host drops us (or `lingerMs` passed). */
function sendAndWaitClose(path: string, data: Buffer, lingerMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    const timer = setTimeout(() => {
      s.destroy();
      if (lingerMs < 5000) resolve();
      else reject(new Error('the host did not drop a connection that sent garbage'));
    }, lingerMs);
    s.on('connect', () => s.write(data));
    s.on('data', () => undefined);
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Reads a host's HELLO and JOURNAL frames, then disconnects. */
function readJournal(path: string): Promise<{ wrapped: boolean; bytes: Buffer }> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('no journal from the host'));
    }, 20_000);
    s.on('error', reject);
    s.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
        const type = buf.readUInt8(0);
        const payload = buf.subarray(5, 5 + buf.readUInt32BE(1));
        buf = buf.subarray(5 + payload.length);
        if (type === 2) {
          clearTimeout(timer);
          s.destroy();
          resolve({ wrapped: payload[0] === 1, bytes: payload.subarray(1) });
          return;
        }
      }
    });
  });
}
