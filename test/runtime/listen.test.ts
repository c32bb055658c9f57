/**
 * Listening sockets across checkpoint and restore (ZDTM-style): a server listening on a Unix
 * path and on a TCP port of 127.0.0.1 answers again after a restore, with the same token (the
 * same program, not a restarted one); a connection from inside the pod that waited in the
 * listener's queue is still answered; a port taken at restore fails the restore cleanly, naming
 * the address, before the program runs. Real programs: a tmux server inside a session, Python's
 * http.server. As root the set runs twice: as root and as an ordinary user (nobody).
 */
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src-main/api/client.js';
import { startDaemon, vos, waitFor, type DaemonHandle } from '../helpers/agent-process.js';
import { buildTestPrograms, runAsUsers } from '../helpers/test-programs.js';

let programs: string;

beforeAll(() => {
  programs = buildTestPrograms();
});

afterAll(() => {
  rmSync(programs, { recursive: true, force: true });
});

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const TMUX = ['/usr/bin/tmux', '/bin/tmux'].find((p) => existsSync(p)) ?? null;

const runAs = runAsUsers('listening-socket tests');

/** Connects (a Unix path, or a port of 127.0.0.1) and reads until the server closes. */
function ask(target: string | number, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = typeof target === 'number' ? connect(target, '127.0.0.1') : connect(target);
    let text = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer from ${target} within ${timeoutMs} ms (got ${JSON.stringify(text)})`));
    }, timeoutMs);
    sock.on('data', (d: Buffer) => (text += d.toString()));
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
  });
}

describe.each(runAs)('listening sockets across checkpoint and restore (as $who)', ({ user }) => {
  let agent: DaemonHandle;
  let client: ApiClient;
  let work: string;
  const env = (): Record<string, string> => ({ ...(process.env as Record<string, string>), HOME: agent.home, PS1: 'vos$ ' });

  beforeAll(async () => {
    agent = await startDaemon(user ? { asUser: user } : {});
    client = await agent.connect();
    work = agent.home;
  });

  afterAll(async () => {
    await agent?.stop();
  });

  async function run(command: string, args: string[] = []): Promise<string> {
    const s = await client.request('session.create', { command, args, env: env(), cwd: work, cols: 120, rows: 30 });
    return s.id;
  }
  const send = (id: string, data: string): Promise<unknown> => client.request('session.input', { id, data });
  /** Waits for the pattern on the session's screen; a timeout shows the screen. */
  const waitText = async (id: string, pattern: string, timeoutMs = 10_000): Promise<{ lines: string[] }> => {
    try {
      return await client.request('session.wait', { id, pattern, timeoutMs });
    } catch (err) {
      throw new Error(`${String(err)}\n--- screen ---\n${await screen(id).catch(() => '(gone)')}`);
    }
  };
  const screen = async (id: string): Promise<string> => (await client.request('session.screen', { id })).lines.join('\n');

  async function checkpoint(id: string, name: string): Promise<{ file: string; warnings: string[]; stderr: string }> {
    const file = join(work, `${name}-${id}.vosimg`);
    const cp = await vos(agent.home, ['checkpoint', id, '--out', file, '--json']);
    expect(cp.code, cp.stderr).toBe(0);
    const result = JSON.parse(cp.stdout) as { bytes: number; warnings?: string[] };
    expect(result.bytes).toBe(statSync(file).size);
    return { file, warnings: result.warnings ?? [], stderr: cp.stderr };
  }

  async function kill(id: string): Promise<void> {
    await client.request('session.kill', { id, signal: 'KILL' });
    await waitFor('the original to end', async () => (await client.request('session.list', {})).find((s) => s.id === id)?.state === 'exited');
  }

  async function restore(file: string): Promise<{ id: string; note: string | null; stderr: string }> {
    const r = await vos(agent.home, ['restore', file, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const id = (JSON.parse(r.stdout) as { id: string }).id;
    const info = (await client.request('session.list', {})).find((s) => s.id === id)!;
    return { id, note: info.restoreNote, stderr: r.stderr };
  }

  it('a server on a Unix path and a TCP port answers again after a restore (same program, same port)', async () => {
    const path = join(work, 'srv.sock');
    const id = await run(join(programs, 'listener'), [path]);
    const ready = (await waitText(id, 'ready token=\\w+ port=\\d+')).lines.join('\n');
    const [, token, port] = /ready token=(\w+) port=(\d+)/.exec(ready)!;
    expect(await ask(path)).toMatch(`answer token=${token} via=unix n=1`);
    expect(await ask(Number(port))).toMatch(`answer token=${token} via=tcp n=2`);
    const { file, warnings, stderr } = await checkpoint(id, 'listener');
    expect(warnings).toEqual([]);
    expect(stderr).toBe('');
    await kill(id);
    const r = await restore(file);
    expect(r.note).toBeNull();
    expect(r.stderr).toBe('');
    // The socket file is there again (a socket), and both addresses answer, counting on.
    expect(statSync(path).isSocket()).toBe(true);
    expect(await ask(path)).toMatch(`answer token=${token} via=unix n=3`);
    expect(await ask(Number(port))).toMatch(`answer token=${token} via=tcp n=4`);
    await waitText(r.id, 'answered 4 via tcp');
    await client.request('session.kill', { id: r.id, signal: 'KILL' });
  });

  it('a connection from inside the pod that waited in the queue is answered after the restore', async () => {
    const path = join(work, 'queue.sock');
    const id = await run(join(programs, 'listener'), [path, 'queued']);
    const ready = (await waitText(id, 'ready token=\\w+ port=\\d+')).lines.join('\n');
    const token = /ready token=(\w+)/.exec(ready)![1]!;
    await waitText(id, '^child queued$');
    const { file, warnings } = await checkpoint(id, 'queued');
    expect(warnings).toEqual([]);
    await kill(id);
    const r = await restore(file);
    expect(r.note).toBeNull();
    await send(r.id, 'go\n');
    await waitText(r.id, `child got answer token=${token} via=unix n=1`);
    expect(await screen(r.id)).not.toContain('child got nothing');
    await client.request('session.kill', { id: r.id, signal: 'KILL' });
  });

  it('a TCP port taken at restore fails the restore, naming the address, and the program never runs', async () => {
    const path = join(work, 'taken.sock');
    const id = await run(join(programs, 'listener'), [path]);
    const ready = (await waitText(id, 'ready token=\\w+ port=\\d+')).lines.join('\n');
    const port = Number(/port=(\d+)/.exec(ready)![1]);
    const { file } = await checkpoint(id, 'taken');
    await kill(id);
    // Someone else listens on that port now.
    const other: Server = createServer((s) => {
      s.on('error', () => {}); // a probe that connects and resets (the restorer's check) is no failure here
      s.end('other\n');
    });
    await new Promise<void>((resolve, reject) => {
      other.once('error', reject);
      other.listen(port, '127.0.0.1', () => resolve());
    });
    try {
      const before = (await client.request('session.list', {})).map((s) => s.id);
      const r = await vos(agent.home, ['restore', file, '--json']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`127.0.0.1:${port}`);
      expect(r.stderr).toMatch(/in use/);
      // No new session is left, and the port is still the other server's.
      const after = (await client.request('session.list', {})).filter((s) => !before.includes(s.id));
      expect(after.filter((s) => s.state === 'running')).toEqual([]);
      expect(await ask(port)).toBe('other\n');
    } finally {
      await new Promise((resolve) => other.close(resolve));
    }
  });

  it('the directory of a Unix socket path, missing at restore, is made (0700); one another user owns refuses the restore', async () => {
    // Another machine's /tmp has no tmux-UID yet: the socket's directory is made again.
    const dir = join(work, 'sockets-of-a-server');
    mkdirSync(dir);
    if (user) chownSync(dir, user.uid, user.gid);
    const path = join(dir, 'srv.sock');
    const id = await run(join(programs, 'listener'), [path]);
    const token = /ready token=(\w+)/.exec((await waitText(id, 'ready token=\\w+ port=\\d+')).lines.join('\n'))![1]!;
    const { file } = await checkpoint(id, 'sockdir');
    await kill(id);
    rmSync(dir, { recursive: true });
    const r = await restore(file);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(r.note).toContain(`${dir} was missing here: made it (private to this user, 0700) for the socket of`);
    expect(await ask(path)).toMatch(`answer token=${token} via=unix`);
    await kill(r.id);
    // Someone else's directory there: they could swap the socket under the program. (Not as
    // nobody: inside its pod an owner with no mapping shows as the overflow uid, nobody's own.)
    if (user) return;
    chownSync(dir, 12345, 12345);
    const refused = await vos(agent.home, ['restore', file, '--json']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`its directory ${dir} belongs to another user here`);
    rmSync(dir, { recursive: true, force: true });
  });

  it('restoring while the original still listens on the Unix path is refused (the path is not stolen)', async () => {
    const path = join(work, 'busy.sock');
    const id = await run(join(programs, 'listener'), [path]);
    const ready = (await waitText(id, 'ready token=\\w+ port=\\d+')).lines.join('\n');
    const token = /ready token=(\w+)/.exec(ready)![1]!;
    const { file } = await checkpoint(id, 'busy');
    const r = await vos(agent.home, ['restore', file, '--json']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(path);
    // The original still answers on its path.
    expect(await ask(path)).toMatch(`answer token=${token} via=unix`);
    await client.request('session.kill', { id, signal: 'KILL' });
  });

  it('a connection to outside the session is named at checkpoint and in the restore note', async () => {
    // Its end of the connection is reset when the program is killed: no failure here.
    const outside: Server = createServer((s) => s.on('error', () => {}));
    await new Promise<void>((resolve) => outside.listen(0, '127.0.0.1', () => resolve()));
    const port = (outside.address() as { port: number }).port;
    try {
      const id = await run(PYTHON, [
        '-c',
        `import socket,time\ns=socket.create_connection(("127.0.0.1",${port}))\nprint("connected")\nwhile True: time.sleep(1)`,
      ]);
      await waitText(id, '^connected$');
      const { file, warnings, stderr } = await checkpoint(id, 'outside');
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(`a TCP connection to 127.0.0.1:${port} will be restored disconnected`);
      expect(stderr).toContain('vos: warning:');
      await kill(id);
      const r = await restore(file);
      expect(r.note).toContain(`a TCP connection to 127.0.0.1:${port} came back disconnected`);
      expect(r.stderr).toContain('vos: note:');
      await client.request('session.kill', { id: r.id, signal: 'KILL' });
    } finally {
      outside.close();
    }
  });

  it('an abstract Unix name and an IPv6-only port are listened on again', async () => {
    const name = `vos-test-${process.pid}-${user ? 'nobody' : 'self'}`;
    const id = await run(PYTHON, [
      '-c',
      [
        'import os, select, socket',
        'tok = os.urandom(6).hex()',
        'a = socket.socket(socket.AF_UNIX); a.bind("\\0' + name + '"); a.listen(5)',
        'b = socket.socket(socket.AF_INET6); b.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1); b.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
        'b.bind(("::1", 0)); b.listen(7)',
        'print("ready", b.getsockname()[1], flush=True)',
        'while True:',
        '    for s in select.select([a, b], [], [])[0]:',
        '        c, _ = s.accept(); c.sendall(b"token=%s\\n" % tok.encode()); c.close()',
      ].join('\n'),
    ]);
    const port = Number(/ready (\d+)/.exec((await waitText(id, '^ready \\d+$')).lines.join('\n'))![1]);
    const askV6 = (): Promise<string> =>
      new Promise((resolve, reject) => {
        const sock = connect(port, '::1');
        let text = '';
        sock.on('data', (d: Buffer) => (text += d.toString()));
        sock.on('error', reject);
        sock.on('close', () => resolve(text));
      });
    // Node pads abstract addresses (ECONNREFUSED): Python asks with the name's exact length.
    const askAbstract = (): string =>
      execFileSync(PYTHON, ['-c', `import socket\ns = socket.socket(socket.AF_UNIX)\ns.settimeout(5)\ns.connect("\\0${name}")\nprint(s.recv(100).decode(), end="")`], {
        encoding: 'utf8',
        timeout: 10_000,
      });
    const pid = askAbstract();
    expect(pid).toMatch(/^token=[0-9a-f]{12}\n$/);
    expect(await askV6()).toBe(pid);
    const { file, warnings } = await checkpoint(id, 'abstract');
    expect(warnings).toEqual([]);
    await kill(id);
    const r = await restore(file);
    expect(r.note).toBeNull();
    expect(askAbstract()).toBe(pid); // the same token: the same program, not a new one
    expect(await askV6()).toBe(pid);
    await client.request('session.kill', { id: r.id, signal: 'KILL' });
  });

  it('a port held by the closed connections of a server without SO_REUSEADDR is refused, saying so', async () => {
    const id = await run(PYTHON, [
      '-c',
      [
        'import socket',
        'b = socket.socket(); b.bind(("127.0.0.1", 0)); b.listen(3)',
        'print("ready", b.getsockname()[1], flush=True)',
        'while True:',
        '    c, _ = b.accept(); c.sendall(b"hi\\n"); c.close()',
      ].join('\n'),
    ]);
    const port = Number(/ready (\d+)/.exec((await waitText(id, '^ready \\d+$')).lines.join('\n'))![1]);
    expect(await ask(port)).toBe('hi\n'); // the server closes first: its end waits (TIME_WAIT) on the port
    const { file } = await checkpoint(id, 'timewait');
    await kill(id);
    const r = await vos(agent.home, ['restore', file, '--json']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`127.0.0.1:${port}`);
    expect(r.stderr).toContain('SO_REUSEADDR');
  });

  it('Python http.server answers a request after a restore', async () => {
    const id = await run(PYTHON, ['-m', 'http.server', '0', '--bind', '127.0.0.1']);
    const line = (await waitText(id, 'Serving HTTP on 127\\.0\\.0\\.1 port \\d+', 15_000)).lines.join('\n');
    const port = Number(/port (\d+)/.exec(line)![1]);
    expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(200);
    const { file, warnings } = await checkpoint(id, 'http');
    expect(warnings).toEqual([]);
    await kill(id);
    const r = await restore(file);
    expect(r.note).toBeNull();
    const res = await fetch(`http://127.0.0.1:${port}/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('Directory listing');
    await waitText(r.id, '"GET / HTTP/1\\.1" 200');
    await client.request('session.kill', { id: r.id, signal: 'KILL' });
  });

  // tmux runs a window's command with $SHELL -c, or, without SHELL (the suite runs with it unset),
  // with the user's login shell: nobody's is nologin, which exits at once, and with its only
  // window the session and the server end ("no server running"). So the server is given a shell.
  const tmuxSkip = !TMUX ? 'tmux is not installed' : null;
  if (tmuxSkip) console.log(`tmux case skipped: ${tmuxSkip}`);
  it.skipIf(tmuxSkip !== null)('a tmux server inside a session keeps serving its clients after a restore', async () => {
    const sock = join(work, 'tmux.sock');
    const id = await run('/bin/sh');
    await waitText(id, 'vos\\$');
    await send(id, `SHELL=/bin/sh ${TMUX} -S ${sock} new-session -d -s inner 'sleep 100000'; ${TMUX} -S ${sock} ls; echo started-$?\n`);
    await waitText(id, '^inner: 1 windows');
    await waitText(id, '^started-0$');
    const { file, warnings } = await checkpoint(id, 'tmux');
    expect(warnings).toEqual([]);
    await kill(id);
    const r = await restore(file);
    expect(r.note).toBeNull();
    await send(r.id, `${TMUX} -S ${sock} ls; echo listed-$?\n`);
    await waitText(r.id, '^listed-0$');
    await send(r.id, `${TMUX} -S ${sock} new-window -t inner 'sleep 100000'; ${TMUX} -S ${sock} ls; echo again-$?\n`);
    await waitText(r.id, 'inner: 2 windows'); // (not at a line's start: the typed line may come before the prompt)
    await waitText(r.id, '^again-0$');
    await send(r.id, `${TMUX} -S ${sock} kill-server\n`);
    await client.request('session.kill', { id: r.id, signal: 'KILL' });
  });
});
