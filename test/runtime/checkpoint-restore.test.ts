/**
 * Checkpoint and restore of real, unmodified programs (ZDTM-style: one kind of state each).
 * Every case: start under a real agent, bring the program into a state, `vos checkpoint`, kill
 * it, `vos restore`, and prove on the new terminal that the state survived and the program
 * still works. As root the whole set runs twice: as root and as an ordinary user (nobody).
 */
import { randomBytes } from 'node:crypto';
import { chownSync, copyFileSync, existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
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

const runAs = runAsUsers('checkpoint/restore tests');

describe.each(runAs)('checkpoint and restore (as $who)', ({ user }) => {
  let agent: DaemonHandle;
  let client: ApiClient;
  let work: string;
  const env = (): Record<string, string> => ({ ...(process.env as Record<string, string>), HOME: agent.home, PS1: 'vos$ ' });
  /** Files and directories the test makes for the programs must belong to the agent's user. */
  const own = (path: string): string => {
    if (user) chownSync(path, user.uid, user.gid);
    return path;
  };

  beforeAll(async () => {
    agent = await startDaemon(user ? { asUser: user } : {});
    client = await agent.connect();
    work = agent.home; // writable by the agent's user
  });

  afterAll(async () => {
    await agent?.stop();
  });

  async function run(command: string, args: string[] = [], cwd?: string): Promise<string> {
    const s = await client.request('session.create', { command, args, env: env(), cwd: cwd ?? work, cols: 100, rows: 30 });
    return s.id;
  }

  const send = (id: string, data: string): Promise<unknown> => client.request('session.input', { id, data });
  const waitText = (id: string, pattern: string, timeoutMs = 10_000): Promise<{ lines: string[] }> =>
    client.request('session.wait', { id, pattern, timeoutMs });
  const screen = async (id: string): Promise<string> => (await client.request('session.screen', { id })).lines.join('\n');

  /** vos checkpoint, kill, vos restore: the id of the restored session. `said`: the checkpoint's
   * warning and the restore's note expected on stderr (else both must be silent). */
  async function cycle(id: string, name = 'image', said?: { warning: string; note: string }): Promise<string> {
    const file = join(work, `${name}-${id}.vosimg`);
    const cp = await vos(agent.home, ['checkpoint', id, '--out', file, '--json']);
    if (said) expect(cp.stderr).toBe(`vos: warning: ${said.warning}\n`);
    else expect(cp.stderr).toBe('');
    expect(cp.code).toBe(0);
    const result = JSON.parse(cp.stdout) as { bytes: number; processes: number; frozenMs: number };
    expect(result.bytes).toBe(statSync(file).size);
    expect(result.processes).toBeGreaterThanOrEqual(1);
    await client.request('session.kill', { id, signal: 'KILL' });
    await waitFor('the original to end', async () => (await client.request('session.list', {})).find((s) => s.id === id)?.state === 'exited');
    const restored = await vos(agent.home, ['restore', file, '--json']);
    if (said) expect(restored.stderr).toBe(`vos: note: ${said.note}\n`);
    else expect(restored.stderr).toBe('');
    expect(restored.code).toBe(0);
    return (JSON.parse(restored.stdout) as { id: string }).id;
  }

  it('a C counter continues counting, with the same token (not restarted)', async () => {
    const id = await run(join(programs, 'counter'), ['50']);
    const before = await waitText(id, 'count=5$');
    const token = /token=(\w+)/.exec(before.lines.join('\n'))![1]!;
    const rid = await cycle(id, 'counter');
    // The restored screen shows where it was; new lines continue it with the same token.
    const after = await waitText(rid, `token=${token} count=(\\d*[2-9]\\d)$`);
    expect(after.lines.join('\n')).not.toMatch(/token=(?!\w*\b)/);
    expect(await screen(rid)).not.toMatch(new RegExp(`token=(?!${token})`));
  });

  it('saves the screen where the program was frozen: a fast printer goes on after it, no line missing or twice', async () => {
    // One process printing a line every 2 ms.
    const id = await run(join(programs, 'counter'), ['2']);
    await waitText(id, 'count=\\d{3,}$');
    const rid = await cycle(id, 'printer');
    const numbers = async (): Promise<number[]> => {
      const { snapshot } = await client.request('session.attach', { id: rid });
      await client.request('session.detach', { id: rid });
      return [...snapshot.matchAll(/count=(\d+)/g)].map((m) => Number(m[1]));
    };
    const first = Math.max(...(await numbers()));
    // The restored screen (the image's) and what the program printed since, in one scrollback.
    const all = await waitFor('the restored printer to go on', async () => {
      const ns = await numbers();
      return Math.max(...ns) >= first + 30 ? ns : null;
    });
    const gaps = all.flatMap((n, i) => (i > 0 && n !== all[i - 1]! + 1 ? [`${all[i - 1]} then ${n}`] : []));
    expect(gaps).toEqual([]);
  });

  it('a shell loop that runs a short sleep all the time (dash: vfork, then exec) is checkpointed and loops on', async () => {
    const id = await run('sh', ['-c', 'i=0; while :; do i=$((i+1)); echo "n=$i"; sleep 0.002; done']);
    await waitText(id, '^n=\\d{3,}$');
    // Taken three times: each time a child is likely between vfork and exec, or just exited.
    let rid = id;
    for (let i = 0; i < 3; i++) rid = await cycle(rid, `loop${i}`);
    const now = async (): Promise<number> => Math.max(...[...(await screen(rid)).matchAll(/^n=(\d+)$/gm)].map((m) => Number(m[1])));
    const at = await now();
    await waitFor('the loop to go on', async () => (await now()) >= at + 20);
  });

  it('keeps what /proc shows: the program, its arguments and environment', async () => {
    const prog = join(programs, 'counter');
    const id = await run(prog, ['70']);
    await waitText(id, 'count=2$');
    const rid = await cycle(id, 'proc');
    await waitText(rid, 'count=\\d*[1-9]\\d$');
    const pid = (await client.request('session.list', {})).find((s) => s.id === rid)!.pid;
    expect(readlinkSync(`/proc/${pid}/exe`)).toBe(prog);
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toBe(`${prog}\u000070\u0000`);
    expect(readFileSync(`/proc/${pid}/environ`, 'utf8')).toContain(`HOME=${agent.home}\u0000`);
    expect(readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(/^NSpid:\s+\d+\s+2$/m); // pid 2 of its pod, again
  });

  it("a child holding its own /proc/self/fd open (as Java's launcher does between fork and exec) lists its own descriptors after the restore", async () => {
    // pod init opens the image's files before the processes exist: this one is opened by the
    // child itself once it does.
    const id = await run(PYTHON, [
      '-c',
      [
        'import os, sys',
        'if os.fork() == 0:',
        '    d = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)',
        '    print("child ready", flush=True)',
        '    for line in sys.stdin:',
        '        mine = os.readlink("/proc/self/fd/%d" % d) == "/proc/%d/fd" % os.getpid()',
        // Its listing is this process's own: what /proc/self/fd lists (each listing opens one
        // descriptor of its own for the time it reads, the same number both times).
        '        held, now = sorted(os.listdir(d)), sorted(os.listdir("/proc/self/fd"))',
        '        print("child lists", d, str(d) in held and held == now, "own", mine, flush=True)',
        'else:',
        '    os.wait()',
      ].join('\n'),
    ]);
    await waitText(id, '^child ready$');
    const rid = await cycle(id, 'procfd');
    await send(rid, 'again\r');
    const seen = await waitText(rid, '^child lists \\d+ \\w+ own \\w+$');
    expect(seen.lines.join('\n')).toMatch(/^child lists \d+ True own True$/m);
  });

  it('restores one of each kind of open file (eventfd, epoll, timerfd, signalfd, sockets, pipe, files)', async () => {
    const file = join(work, 'offset.txt');
    writeFileSync(file, 'abcdefghijklmnop\n');
    own(file);
    const id = await run(join(programs, 'fdzoo'), [file]);
    await waitText(id, '^ready$');
    const rid = await cycle(id, 'fdzoo');
    await send(rid, '\r');
    const s = (await waitText(rid, '^round 1 done$')).lines.join('\n');
    expect(s).toMatch(/^eventfd: 5$/m);
    expect(s).toMatch(/^timerfd: expired$/m);
    expect(s).toMatch(/^epoll: eventfd=1/m);
    expect(s).toMatch(/^signalfd: 10$/m);
    expect(s).toMatch(/^stream: stream-in-flight$/m);
    expect(s).toMatch(/^dgram: dgram-one\/9\ndgram: dgram-two!\/10$/m);
    expect(s).toMatch(/^pipe: pipe-in-flight$/m);
    expect(s).toMatch(/^file offset: 7$/m);
    expect(s).toMatch(/^devnull: 1 urandom: 8 dir: 1$/m);
  });

  it('keeps signal state: handlers, an interval timer, a pending signal, the alternate stack; the stop signal stays the runtime\'s through restores', async () => {
    const id = await run(join(programs, 'signals'));
    await waitText(id, '^ready$');
    await send(id, '\r');
    const before = Number(/alarms=(\d+)/.exec((await waitText(id, '^alarms=\\d+ .*stray=\\d+$')).lines.join('\n'))![1]);
    const rid = await cycle(id, 'signals');
    await new Promise((r) => setTimeout(r, 300));
    await send(rid, '\r');
    // The restored screen shows the report from before; wait for the new one under it.
    const reports = async (): Promise<string[]> => (await screen(rid)).split('\n').filter((l) => l.startsWith('alarms='));
    await waitFor('a report after the restore', async () => (await reports()).length >= 2);
    const after = (await reports()).at(-1)!;
    expect(after).toMatch(/usr2=0 pending-usr2=1 altstack=kept on-altstack=0 stray=0$/);
    expect(Number(/alarms=(\d+)/.exec(after)![1])).toBeGreaterThan(before + 5); // the timer kept firing
    // Once more: a restored program that asked for a handler of the stop signal (as top does)
    // still does not get it; its own stays where the runtime keeps it (it stopped SIGSEGV-ing top).
    const again = await cycle(rid, 'signals-again');
    await send(again, 'u\r');
    await waitText(again, 'usr2=1 pending-usr2=0 altstack=kept on-altstack=1 stray=0');
  });

  it('keeps the advice given to memory (huge pages or not, dont-fork, wipe-on-fork, dont-dump)', async () => {
    const id = await run(join(programs, 'advice'));
    await waitText(id, '^ready$');
    const rid = await cycle(id, 'advice');
    await send(rid, '\r');
    const s = (await waitText(rid, '^dontdump: flag=\\d child=\\w+ data=\\w+$')).lines.join('\n');
    expect(s).toMatch(/^huge: flag=1 child=data data=kept$/m);
    expect(s).toMatch(/^nohuge: flag=1 child=data data=kept$/m);
    expect(s).toMatch(/^dontfork: flag=1 child=absent data=kept$/m);
    expect(s).toMatch(/^wipe: flag=1 child=zero data=kept$/m);
    expect(s).toMatch(/^dontdump: flag=1 child=data data=kept$/m);
  });

  it('memory shared between two processes stays shared', async () => {
    const id = await run(join(programs, 'shm-counter'));
    await waitText(id, 'shared=\\d{2,}$');
    const rid = await cycle(id, 'shm');
    const value = async (): Promise<number> => Number([...(await screen(rid)).matchAll(/shared=(\d+)/g)].at(-1)![1]);
    const first = await value();
    await waitFor('the parent to see the child count on', async () => (await value()) > first + 20);
  });

  it("JVM perf-data files (/tmp/hsperfdata_<user>/<pid>) are each pod's own, and their shared mapping comes back with its content", async () => {
    // What every JVM does at start: map /tmp/hsperfdata_<user>/<its pid> shared. Both programs
    // are pid 2 of their pods, so on the machine's /tmp they would map one file.
    const program = [
      'import mmap, os, pwd, sys',
      'd = "/tmp/hsperfdata_" + pwd.getpwuid(os.geteuid()).pw_name',
      'os.makedirs(d, exist_ok=True)',
      'token = sys.argv[1]',
      'path = "%s/%d" % (d, os.getpid())',
      'fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)',
      'os.ftruncate(fd, 4096)',
      'm = mmap.mmap(fd, 4096, mmap.MAP_SHARED)',
      'os.close(fd)',
      'm[:len(token)] = token.encode()',
      'print("mapped", path, flush=True)',
      'for line in sys.stdin:',
      '    m[len(token):len(token) + 6] = b"+again"',
      '    print("holds", m[:len(token) + 6].decode(), os.listdir(d), flush=True)',
    ].join('\n');
    // Tokens of this run: a file an earlier run left at that name holds others.
    const [one, other] = [`perf-first-${randomBytes(4).toString('hex')}`, `perf-other-${randomBytes(4).toString('hex')}`];
    const first = await run(PYTHON, ['-c', program, one]);
    const second = await run(PYTHON, ['-c', program, other]);
    const mapped = (await waitText(first, '^mapped /tmp/hsperfdata_[^/]+/\\d+$')).lines.join('\n').match(/^mapped (\S+)$/m)![1];
    await waitText(second, `^mapped ${mapped.replace(/[/.]/g, '\\$&')}$`);
    // The machine's directory never sees them (if a JVM of its own has that pid, its file is not theirs).
    const outside = existsSync(mapped) ? readFileSync(mapped, 'latin1') : '';
    expect(outside).not.toContain(one);
    expect(outside).not.toContain(other);
    const rid = await cycle(first, 'perfdata');
    await send(rid, 'again\r');
    expect((await waitText(rid, '^holds .*\\]$')).lines.join('\n')).toMatch(new RegExp(`^holds ${one}\\+again \\[\\]$`, 'm'));
    await send(second, 'again\r');
    expect((await waitText(second, '^holds .*\\]$')).lines.join('\n')).toMatch(new RegExp(`^holds ${other}\\+again \\['2'\\]$`, 'm'));
    await client.request('session.kill', { id: second, signal: 'KILL' });
    await client.request('session.kill', { id: rid, signal: 'KILL' });
  });

  it('a pty made inside the pod (script) keeps working, with its own job in front', async () => {
    const id = await run('script', ['-q', '-c', `${join(programs, 'counter')} 60`, '/dev/null']);
    await waitText(id, 'count=3\\s*$');
    const rid = await cycle(id, 'script');
    await waitText(rid, 'count=\\d*[1-9]\\d\\s*$');
    await send(rid, '\x03'); // through script's pty to the counter, its foreground job
    await waitFor('script to end with its job', async () => (await client.request('session.list', {})).find((s) => s.id === rid)?.state === 'exited');
  });

  it('a TCP connection to outside the pod is restored closed: the program sees the end', async () => {
    const server = createServer((sock) => sock.write('hello\n'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (server.address() as AddressInfo).port;
      const code = `import socket\ns = socket.create_connection(("127.0.0.1", ${port}))\nprint("got", s.recv(6))\ninput()\nprint("after", s.recv(6))\n`;
      const id = await run(PYTHON, ['-c', code]);
      await waitText(id, "^got b'hello\\\\n'$");
      const warning = `process 2 (python3): a TCP connection to 127.0.0.1:${port} will be restored disconnected`;
      // The asker hears it before the session is frozen: an event that comes before the result.
      const order: string[] = [];
      const off = client.onEvent((e) => void (e.event === 'checkpoint.warning' && e.id === id && order.push(`event: ${e.warning}`)));
      try {
        const r = await client.request('session.checkpoint', { id, out: join(work, `early-${id}.vosimg`) });
        order.push(`result: ${(r.warnings ?? []).join('; ')}`);
      } finally {
        off();
      }
      expect(order).toEqual([`event: ${warning}`, `result: ${warning}`]);
      // Said before: at the checkpoint (a warning, once though said twice) and by the restore (its note).
      const rid = await cycle(id, 'tcp', {
        warning,
        note: `a TCP connection to 127.0.0.1:${port} came back disconnected`,
      });
      await send(rid, '\r');
      await waitText(rid, "^after b''$");
    } finally {
      server.close();
    }
  });

  it('a multi-threaded counter: every thread counts on, each with its own TLS', async () => {
    const id = await run(join(programs, 'mt-counter'));
    await waitText(id, 'threads: \\d{2}');
    const rid = await cycle(id, 'mt');
    const last = (text: string): number[] => {
      const m = [...text.matchAll(/threads: (\d+) (\d+) (\d+) (\d+) tls-errors=(\d+)/g)].at(-1)!;
      return m.slice(1).map(Number);
    };
    const first = last(await screen(rid));
    await waitFor('every thread to count on', async () => {
      const now = last(await screen(rid));
      return now.slice(0, 4).every((n, i) => n > first[i]! + 10) && now;
    });
    expect(last(await screen(rid))[4]).toBe(0);
  });

  it('bash with a foreground job and a background job: Ctrl-C reaches the job, jobs lists the other', async () => {
    const id = await run('bash', ['--norc', '--noprofile']);
    await waitText(id, '^vos\\$$');
    await send(id, 'sleep 300 &\r');
    await waitText(id, '^\\[1\\] \\d+$');
    await send(id, `${join(programs, 'counter')} 100\r`);
    await waitText(id, 'count=3$');
    const rid = await cycle(id, 'bash');
    await waitText(rid, 'count=\\d*[1-9]\\d$'); // the foreground job runs on
    await send(rid, '\x03');
    await waitText(rid, '^vos\\$ ?$');
    await send(rid, 'echo "status=$?"; jobs\r');
    const s = await waitText(rid, '^\\[1\\]\\+ +Running +sleep 300 &$');
    expect(s.lines.join('\n')).toMatch(/^status=130$/m);
  });

  it('a python3 REPL keeps its variables', async () => {
    const id = await run(PYTHON, ['-q']);
    await waitText(id, '^>>>$');
    await send(id, 'x = 6 * 7\r');
    await waitText(id, '^>>> x = 6 \\* 7\\n>>>$');
    const rid = await cycle(id, 'python');
    await send(rid, 'print(x * 2)\r');
    await waitText(rid, '^84$');
  });

  it('a node REPL (threads, epoll) keeps its variables', async () => {
    const id = await run(process.execPath);
    await waitText(id, '^> $|^>$');
    await send(id, 'let x = 21\r');
    await waitText(id, '^undefined$');
    const rid = await cycle(id, 'node');
    await send(rid, 'x * 2\r');
    await waitText(rid, '^42$');
    await send(rid, 'await new Promise((r) => setTimeout(() => r("timer ok"), 50))\r');
    await waitText(rid, "^'timer ok'$");
  });

  it('vim keeps an unsaved buffer and redraws its screen', async () => {
    const dir = own(mkdtempSync(join(work, 'vim-')));
    const id = await run('vim', ['-Nu', 'NONE', '-n', 'notes.txt'], dir);
    await waitText(id, 'notes.txt');
    await send(id, 'ihello from before the checkpoint\x1b');
    await waitText(id, '^hello from before the checkpoint$');
    await new Promise((r) => setTimeout(r, 300)); // vim leaves insert mode after its escape delay
    const rid = await cycle(id, 'vim');
    await waitText(rid, '^hello from before the checkpoint$');
    await send(rid, ':s/before/after/\r');
    await waitText(rid, '^hello from after the checkpoint$');
    await send(rid, ':wq\r');
    await waitFor('vim to write the file', () => existsSync(join(dir, 'notes.txt')) && readFileSync(join(dir, 'notes.txt'), 'utf8'));
    expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).toBe('hello from after the checkpoint\n');
  });

  it('less keeps its place in a file', async () => {
    const file = join(work, 'lines.txt');
    writeFileSync(file, Array.from({ length: 1000 }, (_, i) => `line ${i + 1}`).join('\n') + '\n');
    own(file);
    const id = await run('less', [file]);
    await waitText(id, '^line 1$');
    await send(id, '500g');
    await waitText(id, '^line 500$');
    const rid = await cycle(id, 'less');
    await send(rid, ' ');
    const s = await waitText(rid, '^line 5[2-5]\\d$');
    expect(s.lines.join('\n')).not.toMatch(/^line 1$/m);
  });

  it('sqlite3 with an open database goes on reading and writing it', async () => {
    const db = join(work, 'test.db');
    const id = await run('sqlite3', [db]);
    await waitText(id, '^sqlite> ?$');
    // (Not a wait for the prompt: the one already there matches before sqlite3 has read the line.)
    await send(id, "create table t(x); insert into t values (1), (2), (3); select 'created-' || count(*) from t;\r");
    await waitText(id, '^created-3$');
    const rid = await cycle(id, 'sqlite');
    await send(rid, 'insert into t values (4); select count(*), sum(x) from t;\r');
    await waitText(rid, '^4\\|10$');
  });

  it('a pipeline keeps the data in flight between its processes', async () => {
    const id = await run('bash', ['-c', 'seq 1 100000 | while read -r l; do echo "got $l"; read -r x </dev/tty; done']);
    await waitText(id, '^got 1$');
    await send(id, '\r\r');
    await waitText(id, '^got 3$');
    const rid = await cycle(id, 'pipe');
    await send(rid, '\r');
    await waitText(rid, '^got 4$');
    await send(rid, '\r');
    const s = await waitText(rid, '^got 5$');
    expect(s.lines.filter((l) => l.startsWith('got ')).join(',')).toBe('got 1,got 2,got 3,got 4,got 5');
  });

  it('a file deleted while open keeps its content', async () => {
    const id = await run(join(programs, 'deleted-file'), [work]);
    await waitText(id, 'holding fd');
    const rid = await cycle(id, 'deleted');
    await send(rid, '\r');
    await waitText(rid, '^read back 47 bytes: secret content that only lives in an open file$');
  });

  it('restores the same image twice, one after the other', async () => {
    const id = await run(join(programs, 'counter'), ['50']);
    await waitText(id, 'count=3$');
    const file = join(work, 'twice.vosimg');
    expect((await vos(agent.home, ['checkpoint', id, '--out', file, '--stop'])).code).toBe(0);
    await waitFor('--stop to end the session', async () => (await client.request('session.list', {})).find((s) => s.id === id)?.state === 'exited');
    for (let round = 0; round < 2; round++) {
      const r = await vos(agent.home, ['restore', file]);
      expect(r.code).toBe(0);
      const rid = r.stdout.trim();
      await waitText(rid, 'count=\\d*[1-9]\\d$');
      await client.request('session.kill', { id: rid, signal: 'KILL' });
      await waitFor('the restored one to end', async () => (await client.request('session.list', {})).find((s) => s.id === rid)?.state === 'exited');
    }
  });

  it('refuses a truncated, a damaged and a foreign image, restoring nothing', async () => {
    const id = await run(join(programs, 'counter'), ['50']);
    await waitText(id, 'count=2$');
    const file = join(work, 'good.vosimg');
    expect((await vos(agent.home, ['checkpoint', id, '--out', file])).code).toBe(0);
    const size = statSync(file).size;
    const truncated = join(work, 'truncated.vosimg');
    writeFileSync(truncated, readFileSync(file).subarray(0, Math.floor(size / 2)));
    const damaged = join(work, 'damaged.vosimg');
    copyFileSync(file, damaged);
    const bytes = readFileSync(damaged);
    bytes[Math.floor(size / 3)] ^= 0x40;
    writeFileSync(damaged, bytes);
    const foreign = join(work, 'foreign.vosimg');
    writeFileSync(foreign, 'not an image at all\n');
    for (const f of [truncated, damaged, foreign]) own(f);
    const before = (await client.request('session.list', {})).length;
    for (const [path, message] of [
      [truncated, /is truncated/],
      [damaged, /is damaged/],
      [foreign, /is not a vOS image/],
    ] as const) {
      const r = await vos(agent.home, ['restore', path]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(message);
    }
    expect((await client.request('session.list', {})).length).toBe(before);
  });

  it('refuses to checkpoint a pod with what it cannot carry (a SysV message queue), naming it, and keeps it running', async () => {
    const id = await run('bash', ['-c', `perl -e 'msgget(0, 0600) // die; sleep 1000' & exec ${join(programs, 'counter')} 50`]);
    await waitText(id, 'count=2$');
    const out = join(work, 'refused.vosimg');
    const r = await vos(agent.home, ['checkpoint', id, '--out', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the pod has a SysV message queue \(key 0, id \d+\), which vOS cannot carry yet/);
    expect(existsSync(out)).toBe(false);
    await waitText(id, 'count=\\d*[1-9]\\d$'); // still counting
  });
});

describe('restore where the kernel differs (the vdso proxy, forced on this kernel)', () => {
  let agent: DaemonHandle;
  let client: ApiClient;

  beforeAll(async () => {
    agent = await startDaemon({ env: { VOS_FORCE_VDSO_PROXY: '1' } });
    client = await agent.connect();
  });

  afterAll(async () => {
    await agent?.stop();
  });

  it('keeps the old vdso entry points working by jumping to the new vdso', async () => {
    const env = { ...(process.env as Record<string, string>), HOME: agent.home };
    const s = await client.request('session.create', { command: join(programs, 'clock'), env, cwd: agent.home });
    await client.request('session.wait', { id: s.id, pattern: 'tick=3 clocks=ok', timeoutMs: 10_000 });
    const before = readFileSync(`/proc/${(await client.request('session.list', {}))[0]!.pid}/maps`, 'utf8');
    const oldVdso = /^([0-9a-f]+)-[0-9a-f]+ r-xp .*\[vdso\]$/m.exec(before)![1]!;
    const file = join(agent.home, 'clock.vosimg');
    expect((await vos(agent.home, ['checkpoint', s.id, '--out', file, '--stop'])).code).toBe(0);
    const r = await vos(agent.home, ['restore', file]);
    expect(r.stderr).toBe('');
    const rid = r.stdout.trim();
    await client.request('session.wait', { id: rid, pattern: 'tick=\\d*[1-9]\\d clocks=ok', timeoutMs: 10_000 });
    expect((await client.request('session.screen', { id: rid })).lines.join('\n')).not.toContain('BROKEN');
    const pid = (await client.request('session.list', {})).find((x) => x.id === rid)!.pid;
    const maps = readFileSync(`/proc/${pid}/maps`, 'utf8');
    // The old vdso's address holds the image's copy (anonymous, executable); the kernel's vdso is elsewhere.
    expect(maps).toMatch(new RegExp(`^${oldVdso}-[0-9a-f]+ r-xp 00000000 00:00 0 *$`, 'm'));
    expect(/^([0-9a-f]+)-[0-9a-f]+ r-xp .*\[vdso\]$/m.exec(maps)![1]).not.toBe(oldVdso);
  });
});
