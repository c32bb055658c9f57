/**
 * Everyday programs through a checkpoint, a restore and a move (`npm run trial:programs`): not a
 * benchmark but the table issue 11 asks for. Two agents on this machine (loopback, paired
 * through the API as two users would). For each program: start it in a session, wait until it
 * is ready, checkpoint it into the store, end it, restore the image, check that it still does its
 * job (a probe: it answers a fresh input, redraws, serves a connection...), move the restored
 * session to the other agent and check again there. A refusal is recorded with its message.
 *
 * Prints one line per program as it goes and a Markdown table at the end. Programs whose command
 * is missing here are listed as skipped. Environment: TRIAL_ONLY=name,name (a subset).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { get as httpGet } from 'node:http';
import { join } from 'node:path';
import type { ApiClient } from '../src-main/api/client.js';
import { VosError } from '../src-main/api/errors.js';
import { pairAgents, sleep, startLocalAgent, until, type BenchAgent } from './lib.js';

/** How a program shows that it still works: the text it answers a fresh input with, or more. */
type Probe =
  | { kind: 'input'; send: (n: number) => string; expect: (n: number) => RegExp }
  | { kind: 'changes' } // it redraws on its own (a clock, a monitor)
  | { kind: 'file'; append: (n: number) => string; expect: (n: number) => RegExp } // it follows a file
  | { kind: 'connect'; ask: (n: number) => Promise<string>; expect: (n: number) => RegExp }; // it serves

interface Program {
  name: string;
  needs: string; // a command that must exist here
  command: string;
  args: string[];
  ready: RegExp;
  probe: Probe;
  cwd?: string;
}

interface Outcome {
  name: string;
  checkpoint: string;
  restore: string;
  works: string;
  move: string;
  worksThere: string;
  note: string;
}

const root = mkdtempSync('/tmp/vos-trial-');
const shellLike = (send: string): Probe => ({ kind: 'input', send: (n) => `${send.replace('N', String(n))}\r`, expect: (n) => new RegExp(`^\\s*(=> |\\$\\d+ ==> )?${1000 + n}\\s*$`, 'm') });
const echoSum: Probe = shellLike('echo $((1000+N))');

function programs(): Program[] {
  const dir = join(root, 'work');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'lines.txt'), Array.from({ length: 2000 }, (_, i) => `line ${i + 1}`).join('\n') + '\n');
  writeFileSync(join(dir, 'follow.log'), 'started\n');
  const sock = join(dir, 'redis.sock');
  const httpPort = 18000 + Math.floor(Math.random() * 2000);
  return [
    { name: 'bash', needs: 'bash', command: 'bash', args: ['--norc', '-i'], ready: /\$ *$/m, probe: echoSum },
    { name: 'dash', needs: 'dash', command: 'dash', args: ['-i'], ready: /\$ *$/m, probe: echoSum },
    { name: 'zsh', needs: 'zsh', command: 'zsh', args: ['-f', '-i'], ready: /[$%#>] *$/m, probe: echoSum },
    { name: 'fish', needs: 'fish', command: 'fish', args: ['--no-config'], ready: /[#>$] *$/m, probe: shellLike('math 1000+N') },
    { name: 'busybox sh', needs: 'busybox', command: 'busybox', args: ['sh', '-i'], ready: /[$#] *$/m, probe: echoSum },
    { name: 'python3 REPL', needs: 'python3', command: 'python3', args: ['-q'], ready: /^>>> *$/m, probe: shellLike('print(1000+N)') },
    { name: 'node REPL', needs: 'node', command: 'node', args: [], ready: /^> *$/m, probe: shellLike('1000+N') },
    { name: 'irb (Ruby)', needs: 'irb', command: 'irb', args: ['--simple-prompt'], ready: /^>> *$/m, probe: shellLike('1000+N') },
    { name: 'lua5.4', needs: 'lua5.4', command: 'lua5.4', args: ['-i'], ready: /^> *$/m, probe: shellLike('print(1000+N)') },
    { name: 'perl debugger', needs: 'perl', command: 'perl', args: ['-de1'], ready: /DB<1>/, probe: shellLike('p 1000+N') },
    { name: 'tclsh', needs: 'tclsh', command: 'tclsh', args: [], ready: /^% *$/m, probe: shellLike('expr 1000+N') },
    { name: 'bc', needs: 'bc', command: 'bc', args: ['-q'], ready: /^$/m, probe: shellLike('1000+N') },
    { name: 'awk', needs: 'awk', command: 'awk', args: ['{ print $1 + 1000; fflush() }'], ready: /^$/m, probe: { kind: 'input', send: (n) => `${n}\r`, expect: (n) => new RegExp(`^${1000 + n}$`, 'm') } },
    { name: 'jshell (JVM)', needs: 'jshell', command: 'jshell', args: ['-q'], ready: /jshell> *$/m, probe: shellLike('1000+N') },
    { name: 'sqlite3', needs: 'sqlite3', command: 'sqlite3', args: [join(dir, 'trial.db')], ready: /sqlite> *$/m, probe: shellLike('select 1000+N;') },
    { name: 'units', needs: 'units', command: 'units', args: [], ready: /You have: *$/m, probe: { kind: 'input', send: (n) => `${n} m\rcm\r`, expect: (n) => new RegExp(`\\* ${n * 100}\\b`) } },
    { name: 'ed', needs: 'ed', command: 'ed', args: ['-p*'], ready: /^\*$/m, probe: { kind: 'input', send: (n) => `!echo $((1000+${n}))\r`, expect: (n) => new RegExp(`^${1000 + n}$`, 'm') } },
    { name: 'cat', needs: 'cat', command: 'cat', args: [], ready: /^$/m, probe: { kind: 'input', send: (n) => `tok${n}\r`, expect: (n) => new RegExp(`^tok${n}\\ntok${n}$`, 'm') } },
    { name: 'vim', needs: 'vim', command: 'vim', args: ['-u', 'NONE', '-N', join(dir, 'lines.txt')], ready: /line 1\b/, probe: { kind: 'input', send: (n) => `:echo 1000+${n}\r`, expect: (n) => new RegExp(`^${1000 + n}\\s*$`, 'm') } },
    { name: 'nano', needs: 'nano', command: 'nano', args: [join(dir, 'nano.txt')], ready: /GNU nano/, probe: { kind: 'input', send: (n) => `typed${n}`, expect: (n) => new RegExp(`typed${n}`) } },
    { name: 'less', needs: 'less', command: 'less', args: [join(dir, 'lines.txt')], ready: /^line 1$/m, probe: { kind: 'input', send: (n) => `/line 1${n}00\r`, expect: (n) => new RegExp(`^line 1${n}00$`, 'm') } },
    { name: 'man bash', needs: 'man', command: 'man', args: ['bash'], ready: /BASH\(1\)/, probe: { kind: 'input', send: () => '/^SHELL BUILTIN COMMANDS\r', expect: () => /^SHELL BUILTIN COMMANDS$/m } },
    { name: 'top', needs: 'top', command: 'top', args: ['-d', '1'], ready: /load average/, probe: { kind: 'changes' } },
    { name: 'htop', needs: 'htop', command: 'htop', args: ['-d', '10'], ready: /Tasks:/, probe: { kind: 'changes' } },
    { name: 'watch date', needs: 'watch', command: 'watch', args: ['-n', '1', 'date', '+%s.%N'], ready: /Every 1/, probe: { kind: 'changes' } },
    { name: 'vmstat 1', needs: 'vmstat', command: 'vmstat', args: ['1'], ready: /procs/, probe: { kind: 'changes' } },
    // Its help toggles with '?': opened once, then its pages (2: Format, 3: About) are asked for.
    { name: 'ncdu', needs: 'ncdu', command: 'ncdu', args: [dir], ready: /ncdu/, probe: { kind: 'input', send: (n) => (n === 1 ? '?' : String(n)), expect: (n) => [/Move cursor up/, /An error occurred while reading/, /NCurses/][n - 1]! } },
    { name: 'tail -f', needs: 'tail', command: 'tail', args: ['-f', join(dir, 'follow.log')], ready: /started/, probe: { kind: 'file', append: (n) => `appended ${n}\n`, expect: (n) => new RegExp(`^appended ${n}$`, 'm') } },
    { name: 'tmux (server in the pod)', needs: 'tmux', command: 'tmux', args: ['-S', join(dir, 'tmux.sock'), '-f', '/dev/null', 'new-session', 'bash --norc -i'], ready: /[$#] *$/m, probe: echoSum },
    { name: 'GNU screen', needs: 'screen', command: 'screen', args: ['-S', `trial${process.pid}`, 'bash', '--norc', '-i'], ready: /[$#] *$/m, probe: echoSum },
    { name: 'redis-server (Unix socket)', needs: 'redis-server', command: 'redis-server', args: ['--port', '0', '--unixsocket', sock, '--save', '', '--appendonly', 'no'], ready: /ready to accept connections/i, probe: { kind: 'connect', ask: (n) => askSocket(sock, `ECHO tok${n}\r\n`), expect: (n) => new RegExp(`tok${n}`) } },
    { name: 'python3 http.server', needs: 'python3', command: 'python3', args: ['-m', 'http.server', '--bind', '127.0.0.1', String(httpPort)], ready: /Serving HTTP/, cwd: dir, probe: { kind: 'connect', ask: () => askHttp(httpPort, '/lines.txt'), expect: () => /^line 1$/m } },
    { name: 'git log (pager)', needs: 'git', command: 'bash', args: ['-c', `cd ${dir} && (git init -q repo && cd repo && for i in $(seq 1 60); do git -c user.name=t -c user.email=t@t commit -q --allow-empty -m "commit-$i"; done) && cd repo && GIT_PAGER='less' git log`], ready: /commit-60/, probe: { kind: 'input', send: () => '/commit-7\r', expect: () => /commit-7/ } },
    // A Go program (stopped from outside, without the runtime): its query, typed fresh, finds the line.
    { name: 'fzf (Go)', needs: 'fzf', command: 'bash', args: ['-c', `fzf --no-mouse < ${join(dir, 'lines.txt')}`], ready: /2000\/2000/, probe: { kind: 'input', send: (n) => `\x15line 1${n}99`, expect: (n) => new RegExp(`^> line 1${n}99\\s*$`, 'm') } },
    { name: 'gdb (ptraced program)', needs: 'gdb', command: 'gdb', args: ['-q', '-ex', 'run', '--args', 'sleep', '1000'], ready: /Starting program/, probe: { kind: 'changes' } },
    { name: 'strace -f', needs: 'strace', command: 'strace', args: ['-f', '-o', '/dev/null', 'sh', '-c', 'while :; do date +%s%N; sleep 0.2; done'], ready: /^\d{10,}$/m, probe: { kind: 'changes' } },
  ];
}

function askSocket(path: string, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = netConnect(path);
    let got = '';
    s.setTimeout(3000, () => { s.destroy(); reject(new Error('no answer in 3 s')); });
    s.on('connect', () => s.write(line));
    s.on('data', (d) => { got += d.toString(); if (got.includes('\n')) { s.end(); resolve(got); } });
    s.on('error', reject);
  });
}

function askHttp(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: '127.0.0.1', port, path, timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('no answer in 3 s')));
    req.on('error', reject);
  });
}

const screenOf = async (c: ApiClient, id: string): Promise<string> => (await c.request('session.screen', { id })).lines.join('\n');

/** Whether the program does its job in session `id` (on agent `c`): '' if it does, else why not. */
async function probe(p: Program, c: ApiClient, id: string, n: number): Promise<string> {
  try {
    const pr = p.probe;
    if (pr.kind === 'changes') {
      const before = await screenOf(c, id);
      await until('the screen to change', async () => (await screenOf(c, id)) !== before, 8000, 200);
      return await stillRunning(c, id);
    }
    if (pr.kind === 'connect') {
      const answer = await pr.ask(n);
      return pr.expect(n).test(answer) ? await stillRunning(c, id) : `answered ${JSON.stringify(answer.slice(0, 60))}`;
    }
    if (pr.kind === 'file') appendFileSync(join(root, 'work', 'follow.log'), pr.append(n));
    else await c.request('session.input', { id, data: pr.send(n) });
    await c.request('session.wait', { id, pattern: pr.expect(n).source, flags: pr.expect(n).flags || 'm', timeoutMs: 8000 });
    return await stillRunning(c, id);
  } catch (err) {
    return (err as Error).message.split('\n')[0]!.slice(0, 120);
  }
}

/** '' if the session's program still runs, else how it ended. */
async function stillRunning(c: ApiClient, id: string): Promise<string> {
  const info = (await c.request('session.list', {})).find((s) => s.id === id);
  if (!info) return 'the session is gone';
  if (info.state === 'running') return '';
  const last = (await screenOf(c, id)).split('\n').filter((l) => l.trim()).slice(-2).join(' / ');
  return `it ended (${JSON.stringify(info.exit)}; its screen ends: ${last.slice(0, 100)})`;
}

/**
 * A request that, refused only for kept files whose content differs (`takeAsIs` in the refusal),
 * is asked again taking them as they are, as a user would (--take-as-is, "Move anyway").
 */
async function askingAgainAsIs<T>(ask: (takeAsIs?: string[]) => Promise<T>): Promise<{ result: T; asIs: string[] | null }> {
  try {
    return { result: await ask(), asIs: null };
  } catch (err) {
    const asIs = err instanceof VosError ? err.details.takeAsIs : undefined;
    if (!asIs?.length) throw err;
    return { result: await ask(asIs), asIs };
  }
}

const short = (err: unknown): string => (err as Error).message.replace(/\s+/g, ' ').slice(0, 160);

async function tryProgram(p: Program, a: BenchAgent, b: BenchAgent): Promise<Outcome> {
  const o: Outcome = { name: p.name, checkpoint: '-', restore: '-', works: '-', move: '-', worksThere: '-', note: '' };
  const env = { ...(process.env as Record<string, string>), TERM: 'xterm-256color', PS1: 'trial$ ', HOME: join(root, 'home') };
  const ids: Array<[ApiClient, string]> = [];
  try {
    const s = await a.client.request('session.create', { command: p.command, args: p.args, env, cols: 100, rows: 30, ...(p.cwd ? { cwd: p.cwd } : {}) });
    ids.push([a.client, s.id]);
    await a.client.request('session.wait', { id: s.id, pattern: p.ready.source, flags: p.ready.flags || 'm', timeoutMs: 30_000 });
    const before = await probe(p, a.client, s.id, 1);
    if (before) {
      o.note = `does not pass its probe even before: ${before}`;
      return o;
    }
    let image: string;
    try {
      const r = await a.client.request('session.checkpoint', { id: s.id });
      image = r.image!;
      o.checkpoint = 'ok';
    } catch (err) {
      o.checkpoint = 'refused';
      o.note = short(err);
      return o;
    }
    await a.client.request('session.remove', { id: s.id, force: true });
    ids.pop();
    let restored: string;
    try {
      // Refused only for kept files that differ now (node's REPL history, written since): asked again.
      const r = await askingAgainAsIs((takeAsIs) => a.client.request('session.restore', { image, ...(takeAsIs ? { takeAsIs } : {}) }));
      restored = r.result.id;
      if (r.asIs) o.note = `restored taking ${r.asIs.join(', ')} as it is now`;
      ids.push([a.client, restored]);
      o.restore = 'ok';
    } catch (err) {
      o.restore = 'failed';
      o.note = short(err);
      return o;
    }
    const after = await probe(p, a.client, restored, 2);
    o.works = after ? 'NO' : 'yes';
    if (after) {
      o.note = (o.note ? `${o.note}; ` : '') + `after restore: ${after}`;
      console.log(`${p.name}: its screen after the restore, when its probe failed:\n${await screenOf(a.client, restored).catch(() => '(gone)')}`);
    }
    let there: string;
    try {
      // The app's "Move anyway": refused only for files that differ there.
      const r = await askingAgainAsIs((takeAsIs) => a.client.request('session.migrate', { id: restored, peer: b.name, ...(takeAsIs ? { takeAsIs } : {}) }));
      const m = r.result;
      if (r.asIs) o.note = (o.note ? `${o.note}; ` : '') + `moved taking ${r.asIs.join(', ')} there as it is`;
      there = m.session.id.slice(0, m.session.id.indexOf('@'));
      ids.pop();
      ids.push([b.client, there]);
      o.move = 'ok';
      o.note = (o.note ? `${o.note}; ` : '') + `moved ${m.mode}${m.fallback ? ` (not live: ${m.fallback})` : ''}, down ${Math.round(m.downtimeMs)} ms`;
    } catch (err) {
      o.move = 'refused';
      o.note = (o.note ? `${o.note}; ` : '') + short(err);
      const ended = await stillRunning(a.client, restored);
      if (ended) o.note += ` (${ended})`;
      return o;
    }
    const moved = await probe(p, b.client, there, 3);
    o.worksThere = moved ? 'NO' : 'yes';
    if (moved) o.note = (o.note ? `${o.note}; ` : '') + `after the move: ${moved}`;
    return o;
  } catch (err) {
    o.note = (o.note ? `${o.note}; ` : '') + short(err);
    return o;
  } finally {
    for (const [c, id] of ids) await c.request('session.remove', { id, force: true }).catch(() => {});
  }
}

async function main(): Promise<void> {
  mkdirSync(join(root, 'home'), { recursive: true });
  const a = await startLocalAgent('alpha', join(root, 'alpha'));
  const b = await startLocalAgent('beta', join(root, 'beta'));
  const outcomes: Outcome[] = [];
  try {
    const listen = (await b.client.request('agent.info', {})).listen!;
    await a.client.request('peer.add', { address: listen });
    await pairAgents(a, b);
    const only = process.env.TRIAL_ONLY?.split(',');
    for (const p of programs()) {
      if (only && !only.includes(p.name)) continue;
      if (spawnSync('sh', ['-c', `command -v ${p.needs}`]).status !== 0) {
        outcomes.push({ name: p.name, checkpoint: 'skipped', restore: '', works: '', move: '', worksThere: '', note: `${p.needs} is not installed` });
        continue;
      }
      const t0 = Date.now();
      const o = await tryProgram(p, a, b);
      outcomes.push(o);
      console.log(`${o.name}: checkpoint ${o.checkpoint}, restore ${o.restore}, works ${o.works}, move ${o.move}, works there ${o.worksThere} (${((Date.now() - t0) / 1000).toFixed(1)} s)${o.note ? ` — ${o.note}` : ''}`);
      await sleep(100);
    }
  } finally {
    await a.stop();
    await b.stop();
    try {
      execFileSync('pkill', ['-f', root]);
    } catch {
      // nothing left
    }
    rmSync(root, { recursive: true, force: true });
  }
  console.log('\n| program | checkpoint | restore | still works | move | works there | note |\n|---|---|---|---|---|---|---|');
  for (const o of outcomes) console.log(`| ${o.name} | ${o.checkpoint} | ${o.restore} | ${o.works} | ${o.move} | ${o.worksThere} | ${o.note.replace(/\|/g, '/')} |`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
