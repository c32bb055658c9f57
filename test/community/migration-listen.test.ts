/**
 * A server moves between real agents on simulated hosts (network namespaces): it listens on a
 * TCP port and a Unix path there again and answers as the same program; and a move to a host
 * where its port is taken is refused before anything stops, naming the address, the original
 * answering on here. Root only (network namespaces); tmux, GNU screen and http.server move with
 * root's agents and with an ordinary user's (nobody). The hosts share one filesystem: beta gets an empty tmpfs over
 * the directory of the socket path (as another machine would have its own disk); tmux and GNU
 * screen (servers on Unix sockets, whose directories beta lacks) and Python's http.server move so
 * too. Also: a move says before the session stops what it will not carry, and is refused up front
 * where its lock is held.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UNPRIVILEGED, waitFor } from '../helpers/agent-process.js';
import { SimLab, multiHostSkipReason, type HostAgent } from '../helpers/community.js';
import { fillTestPrograms, runAsUsers } from '../helpers/test-programs.js';

const unavailable = multiHostSkipReason('test/community/migration-listen.test.ts');

/** Python asking a server (TCP port of 127.0.0.1, or a Unix path) for its answer. */
const ASK = [
  'import socket, sys',
  'a = sys.argv[1]',
  's = socket.create_connection(("127.0.0.1", int(a)), 5) if a.isdigit() else socket.socket(socket.AF_UNIX)',
  'if not a.isdigit(): s.settimeout(5); s.connect(a)',
  'print(s.recv(200).decode().strip())',
].join('\n');

describe.skipIf(unavailable !== null)('moving a server', () => {
  const lab = new SimLab();
  let scratch: string;
  let programs: string;
  let data: string;

  beforeAll(() => {
    scratch = mkdtempSync('/tmp/vos-mig-listen-');
    chmodSync(scratch, 0o755); // an ordinary user's agents reach the programs and the site
    programs = join(scratch, 'programs');
    data = join(scratch, 'sockets');
    mkdirSync(data, { mode: 0o1777 });
    chmodSync(data, 0o1777);
    fillTestPrograms(programs);
  });
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  const pair = (user: typeof UNPRIVILEGED | null = null): Promise<[HostAgent, HostAgent]> =>
    lab.pairedAgents(user ? { asUser: user } : {}, { ...(user ? { asUser: user } : {}), mountPrelude: `mount -t tmpfs none ${data}` });

  /** A command's prefix that runs it as `user` (none: as root). */
  const as = (user: typeof UNPRIVILEGED | null): string[] =>
    user ? ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups'] : [];

  /** Asks on a host: in its network namespace, and its agent's mount namespace (its own files). */
  const ask = (agent: HostAgent, target: string | number): string =>
    execFileSync('nsenter', [`--target=${agent.proc.pid}`, '--mount', '--net', 'python3', '-c', ASK, String(target)], {
      encoding: 'utf8',
      timeout: 15_000,
    }).trim();

  async function startServer(a: HostAgent): Promise<{ id: string; token: string; port: number; path: string }> {
    const path = join(data, 'srv.sock');
    const id = (await a.vos(['run', '-d', '--name', 'server', '--', join(programs, 'listener'), path])).stdout.trim();
    const ready = await waitFor('the server to listen', async () => /ready token=(\w+) port=(\d+)/.exec(await a.screen(id)));
    return { id, token: ready[1]!, port: Number(ready[2]), path };
  }

  it('moves a server: it listens there on the same port and path and answers, the same program', async () => {
    const [a, b] = await pair();
    const { id, token, port, path } = await startServer(a);
    expect(ask(a, port)).toBe(`answer token=${token} via=tcp n=1`);
    expect(ask(a, path)).toBe(`answer token=${token} via=unix n=2`);
    const moved = await a.vos(['migrate', id, 'beta', '--json']);
    expect(moved.stderr).toBe('');
    expect(moved.code).toBe(0);
    const r = JSON.parse(moved.stdout) as { session: { id: string; restoreNote: string | null } };
    expect(r.session.restoreNote).toBeNull();
    expect(ask(b, port)).toBe(`answer token=${token} via=tcp n=3`);
    expect(ask(b, path)).toBe(`answer token=${token} via=unix n=4`);
  }, 90_000);

  // The servers people keep in a terminal, moved by root's agents and by an ordinary user's.
  for (const { who, user } of runAsUsers('server moves')) {
    it(`moves tmux, whose server listens on a Unix socket: the client and its server go on there (as ${who})`, async () => {
      const [a, b] = await pair(user);
      // Its socket in the directory beta has its own tmpfs over (TMUX_TMPDIR): another machine's /tmp.
      const id = (
        await a.vos(['run', '-d', '--name', 'tmux', '--', 'env', `TMUX_TMPDIR=${data}`, 'SHELL=/bin/sh', 'tmux', '-f', '/dev/null', 'new-session', 'sh'])
      ).stdout.trim();
      await waitFor('tmux to show its shell', async () => /^\[0\] 0:sh\*/m.test(await a.screen(id)), 20_000);
      await a.vos(['send', id, 'echo before-$((6*7))\\r']);
      // (Not at a line's start: typed before the shell's prompt, its output follows that prompt.)
      await waitFor('the shell in tmux to answer', async () => /before-42\s*$/m.test(await a.screen(id)));
      const moved = await a.vos(['migrate', id, 'beta', '--json']);
      expect(moved.code, moved.stderr).toBe(0);
      const there = (JSON.parse(moved.stdout) as { session: { id: string } }).session.id.split('@')[0]!;
      await b.vos(['send', there, 'echo after-$((6*7))\\r']);
      await waitFor('the shell in tmux to answer there', async () => /^after-42\s*$/m.test(await b.screen(there)), 20_000);
      // A second client there reaches the same server: it listens on its path there.
      const ls = execFileSync('nsenter', [`--target=${b.proc.pid}`, '--mount', ...as(user), 'env', `TMUX_TMPDIR=${data}`, 'tmux', 'list-sessions'], { encoding: 'utf8', timeout: 15_000 });
      expect(ls).toMatch(/^0: 1 windows .*\(attached\)/m);
      // The program there runs as that user.
      const listed = (await b.sessions()).find((s) => s.id === there)!;
      expect(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${listed.pid}/status`, 'utf8'))![1]).toBe(String(user?.uid ?? 0));
    }, 90_000);

    it(`moves GNU screen, whose server listens on a Unix socket in SCREENDIR: it goes on there (as ${who})`, async () => {
      const [a, b] = await pair(user);
      const screenDir = join(data, `screen-${who}`);
      mkdirSync(screenDir, { mode: 0o700 });
      if (user) chownSync(screenDir, user.uid, user.gid);
      const id = (await a.vos(['run', '-d', '--name', 'screen', '--', 'env', `SCREENDIR=${screenDir}`, 'SHELL=/bin/sh', 'screen', '-q', 'sh'])).stdout.trim();
      // Typed once the window's shell prompts: what comes before screen took the terminal is lost.
      await waitFor('the shell in screen to prompt', async () => /[$#] *$/m.test(await a.screen(id)), 20_000);
      await a.vos(['send', id, 'echo before-$((6*7))\\r']);
      // (Not at a line's start: typed before the shell's prompt, its output follows that prompt.)
      await waitFor('the shell in screen to answer', async () => /before-42\s*$/m.test(await a.screen(id)), 20_000);
      const moved = await a.vos(['migrate', id, 'beta', '--json']);
      expect(moved.code, moved.stderr).toBe(0);
      const there = (JSON.parse(moved.stdout) as { session: { id: string } }).session.id.split('@')[0]!;
      await b.vos(['send', there, 'echo after-$((6*7))\\r']);
      await waitFor('the shell in screen to answer there', async () => /^after-42\s*$/m.test(await b.screen(there)), 20_000);
      const ls = execFileSync('nsenter', [`--target=${b.proc.pid}`, '--mount', ...as(user), 'env', `SCREENDIR=${screenDir}`, 'screen', '-ls'], { encoding: 'utf8', timeout: 15_000 }).toString();
      expect(ls).toMatch(/\(Attached\)/);
    }, 90_000);

    it(`moves Python's http.server: it answers there on the same port, the same process (as ${who})`, async () => {
      const [a, b] = await pair(user);
      const site = join(scratch, 'site');
      mkdirSync(site, { recursive: true });
      writeFileSync(join(site, 'index.html'), 'hello from the moved server\n');
      const id = (await a.vos(['run', '-d', '--name', 'http', '--', 'python3', '-u', '-m', 'http.server', '8123', '--bind', '127.0.0.1', '--directory', site])).stdout.trim();
      await waitFor('the server to serve', async () => /Serving HTTP on 127\.0\.0\.1 port 8123/.test(await a.screen(id)), 20_000);
      const get = (agent: HostAgent): string =>
        execFileSync('nsenter', [`--target=${agent.proc.pid}`, '--net', 'python3', '-c', 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:8123/", timeout=5).read().decode().strip())'], {
          encoding: 'utf8',
          timeout: 15_000,
        }).trim();
      expect(get(a)).toBe('hello from the moved server');
      const moved = await a.vos(['migrate', id, 'beta', '--json']);
      expect(moved.code, moved.stderr).toBe(0);
      const there = (JSON.parse(moved.stdout) as { session: { id: string } }).session.id.split('@')[0]!;
      expect(get(b)).toBe('hello from the moved server');
      // One log, both requests: the one served here (on the screen that came along) and the one
      // served there, by the same server process.
      await waitFor('the server there to log both requests', async () => ((await b.screen(there)).match(/"GET \/ HTTP\/1\.1" 200/g) ?? []).length >= 2);
    }, 90_000);
  }

  it('refuses before anything stops a move to where its lock is held (the hosts share one kernel: the same machine for locks), naming the file', async () => {
    const [a, b] = await pair();
    const file = join(scratch, 'locked.db');
    writeFileSync(file, 'x');
    const code = `import fcntl, time\nf = open(${JSON.stringify(file)}, "r+"); fcntl.flock(f, fcntl.LOCK_EX)\nn = 0\nwhile True:\n    n += 1; print("tick", n, flush=True); time.sleep(0.2)`;
    const id = (await a.vos(['run', '-d', '--name', 'locker', '--', 'python3', '-c', code])).stdout.trim();
    await waitFor('the lock to be taken', async () => /tick 2/.test(await a.screen(id)));
    const refused = await a.vos(['migrate', id, 'beta']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`stays here: beta refuses it: .*the session holds a lock on ${file}, which is locked here now`));
    // Nothing stopped: it ticks on here, its lock still held; no copy there.
    const ticks = async (): Promise<number> => Math.max(...[...(await a.screen(id)).matchAll(/tick (\d+)/g)].map((m) => Number(m[1])));
    const at = await ticks();
    await waitFor('it to tick on', async () => (await ticks()) > at);
    expect(execFileSync('sh', ['-c', `flock -n ${file} true; echo $?`], { encoding: 'utf8' }).trim()).toBe('1');
    await waitFor('no copy on beta', async () => (await b.sessions()).length === 0, 15_000);
  }, 90_000);

  it('says before the session stops what the move will not carry: a UDP socket connected to outside the session', async () => {
    const [a] = await pair();
    const port = 47000 + (process.pid % 1000);
    // A move keeps TCP connections (migration-relay.test.ts); a connected datagram socket it cannot.
    const code = `import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect(("127.0.0.1", ${port}))\nprint("connected", flush=True)\ntime.sleep(600)`;
    const id = (await a.vos(['run', '-d', '--name', 'client', '--', 'python3', '-c', code])).stdout.trim();
    await waitFor('the connection', async () => /connected/.test(await a.screen(id)));
    const moved = await a.vos(['migrate', id, 'beta']);
    expect(moved.code, moved.stderr).toBe(0);
    const lines = moved.stderr.split('\n');
    const warning = lines.indexOf(`vos: warning: process 2 (python3): a UDP socket to 127.0.0.1:${port} will be restored disconnected`);
    expect(warning, moved.stderr).toBeGreaterThanOrEqual(0);
    // Said before it stopped: before the phase that sends what it changed while stopped.
    const stopped = lines.findIndex((l) => l === 'sending' || l === 'stopping it here');
    expect(stopped, moved.stderr).toBeGreaterThan(warning);
  }, 90_000);

  it('refuses the move before anything stops when the port is taken there, naming it', async () => {
    const [a, b] = await pair();
    const { id, token, port } = await startServer(a);
    // Something else listens on that port on beta.
    const other = lab.net!.spawn(b.host, 'python3', ['-c', `import socket, time\ns = socket.socket(); s.bind(("127.0.0.1", ${port})); s.listen(1)\nprint("up", flush=True)\ntime.sleep(120)`]);
    let up = '';
    other.stdout!.on('data', (d: Buffer) => (up += d.toString()));
    await waitFor('the other server on beta', () => up.includes('up'));
    const refused = await a.vos(['migrate', id, 'beta']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`stays here: beta refuses it: .*the session listens on 127\\.0\\.0\\.1:${port}, which is in use here`));
    // Nothing stopped: the original answers here, counting on; no copy there.
    expect(ask(a, port)).toBe(`answer token=${token} via=tcp n=1`);
    await waitFor('no copy on beta', async () => (await b.sessions()).length === 0, 15_000);
    other.kill('SIGKILL');
  }, 90_000);
});
