/**
 * Migration between real agents on simulated hosts (network namespaces), with real programs:
 * a counter and a bash job move and go on there; a viewer follows; tail -f and a program
 * reading a file sent along read on there; the clocks keep working across kernels and boot
 * times; a program rewriting its memory moves live (and back, stop-and-copy) with every page
 * intact. What happens when a move fails: migration-failures.test.ts (the two files share
 * test/helpers/migration.ts, and run side by side). Root only (network namespaces); tail -f also
 * moves with an ordinary user's agents.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, chmodSync, chownSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ApiEvent } from '../../src-main/api/protocol.js';
import pty from '@lydell/node-pty';
import { VOS, waitFor } from '../helpers/agent-process.js';
import { multiHostSkipReason } from '../helpers/community.js';
import { counts, migrationLab, nothingThere } from '../helpers/migration.js';
import { PROGRAMS_SRC, runAsUsers } from '../helpers/test-programs.js';

const unavailable = multiHostSkipReason('test/community/migration.test.ts');

describe.skipIf(unavailable !== null)('migration', () => {
  const m = migrationLab();

  it('moves a counter: it counts on there, the same program, gone from here', async () => {
    const [a, b] = await m.pair();
    const id = (await a.vos(['run', '-d', '--name', 'count', '--', join(m.programs, 'counter')])).stdout.trim();
    await waitFor('counting', async () => (counts(await a.screen(id))?.count ?? 0) > 5);
    const before = counts(await a.screen(id))!;

    const moved = await a.vos(['migrate', id, 'beta', '--json']);
    expect(moved.stderr).toBe('');
    expect(moved.code).toBe(0);
    const r = JSON.parse(moved.stdout) as { session: { id: string; name: string; peer: { name: string } }; bytes: number; downtimeMs: number };
    expect(r.session.peer.name).toBe('beta');
    expect(r.session.name).toBe('count');
    const there = r.session.id.slice(0, r.session.id.indexOf('@'));
    // It keeps its id there: a script that names it goes on working.
    expect(there).toBe(id);
    // Gone from here...
    expect(await a.sessions()).toEqual([]);
    // ...counting on there, the same process (same token), from where it was.
    await waitFor('the counter to go on there', async () => {
      const now = counts(await b.screen(there));
      return now !== null && now.token === before.token && now.count > before.count + 3;
    });
    // The screen came along: the lines from before the move are in it (its scrollback by now,
    // on a slow machine: the counter goes on printing).
    const viewerThere = await b.connect();
    const { snapshot } = await viewerThere.request('session.attach', { id: there });
    expect(snapshot).toContain(`token=${before.token} count=${before.count}`);
    await viewerThere.request('session.detach', { id: there });
    // And it is listed from here as a session of beta.
    expect((await a.vos(['ls', '--all'])).stdout).toMatch(new RegExp(`^${there}@beta\\s+beta\\s+count\\s+running`, 'm'));
    console.log(`counter moved: ${r.bytes} bytes, stopped ${r.downtimeMs} ms`);
  }, 60_000);

  it('moves a session of a peer from here: vos migrate ID@beta alpha brings it home', async () => {
    const [a, b] = await m.pair();
    const there = (await b.vos(['run', '-d', '--name', 'away', '--', join(m.programs, 'counter')])).stdout.trim();
    await waitFor('counting there', async () => (counts(await b.screen(there))?.count ?? 0) > 3);
    const before = counts(await b.screen(there))!;
    const same = await a.vos(['migrate', `${there}@beta`, 'beta']);
    expect(same.code).toBe(1);
    expect(same.stderr).toMatch(/runs there already/);
    // A viewer here, attached to it there, hears that it came here (under its id here).
    const viewer = await a.connect();
    const events: ApiEvent[] = [];
    viewer.onEvent((e) => events.push(e));
    await viewer.request('session.attach', { id: `${there}@beta`, cols: 80, rows: 24 });
    const moved = await a.vos(['migrate', `${there}@beta`, 'alpha', '--json']);
    expect(moved.code, moved.stderr).toBe(0);
    const r = JSON.parse(moved.stdout) as { from: string; session: { id: string; peer: unknown; name: string } };
    expect(r.from).toMatch(new RegExp(`^${there}@[0-9a-f]{64}$`));
    expect(r.session.peer).toBeNull(); // it is this machine's now
    expect(r.session.name).toBe('away');
    expect(r.session.id).toBe(there); // the same id here
    const heard = await waitFor('the viewer to hear of the move', () =>
      events.find((e): e is Extract<ApiEvent, { event: 'session.moved' }> => e.event === 'session.moved'),
    );
    expect(heard.id).toBe(r.from);
    expect(heard.to).toBe(r.session.id);
    await waitFor('it to count on here, the same program', async () => {
      const now = counts(await a.screen(r.session.id));
      return now !== null && now.token === before.token && now.count > before.count + 3;
    });
    await nothingThere(b);
  }, 60_000);

  it('moves bash with a job in front: Ctrl-C there reaches the job; a viewer here follows it', async () => {
    const [a, b] = await m.pair();
    const onA = await a.connect();
    const env = { ...(process.env as Record<string, string>), PS1: 'mig$ ' };
    const s = await onA.request('session.create', { command: 'bash', args: ['--norc', '--noprofile'], env, name: 'shell' });
    await onA.request('session.wait', { id: s.id, pattern: '^mig\\$', timeoutMs: 10_000 });
    // (Its output, not 'sleep 1000': the typed line's echo shows that before bash runs it.)
    await onA.request('session.input', { id: s.id, data: 'echo job-$((6*7)); sleep 1000\r' });
    await waitFor('the job to start', async () => /^job-42$/m.test(await a.screen(s.id)));

    // A viewer attached here before the move.
    const viewer = await a.connect();
    const events: ApiEvent[] = [];
    viewer.onEvent((e) => events.push(e));
    await viewer.request('session.attach', { id: s.id, cols: 80, rows: 24 });

    const result = await onA.request('session.migrate', { id: s.id, peer: 'beta' });
    expect(result.session.peer?.name).toBe('beta');
    const moved = await waitFor('the viewer to hear of the move', () =>
      events.find((e): e is Extract<ApiEvent, { event: 'session.moved' }> => e.event === 'session.moved'),
    );
    expect(moved.to).toBe(result.session.id);
    // The viewer follows it (through this agent) and keeps receiving its output.
    await viewer.request('session.attach', { id: moved.to });
    events.length = 0;
    const there = result.session.id.slice(0, result.session.id.indexOf('@'));
    await b.vos(['send', there, '\\x03']); // Ctrl-C on beta: the job ends, bash is back
    await waitFor('the prompt, there', async () => /^mig\$$/m.test(await b.screen(there)));
    await b.vos(['send', there, 'echo "status $?"\\r']);
    await waitFor('the job to have ended by Ctrl-C', async () => /^status 130$/m.test(await b.screen(there)));
    await b.vos(['send', there, 'echo still-bash-$((6*7))\\r']);
    await waitFor('output to reach the viewer here', () =>
      events.some((e) => e.event === 'session.output' && e.id === moved.to && e.data.includes('still-bash-42')),
    );
  }, 60_000);

  it('vos attach follows the session it shows to its new machine', async () => {
    const [a, b] = await m.pair();
    const id = (await a.vos(['run', '-d', '--', 'bash', '--norc', '--noprofile'])).stdout.trim();
    const term = pty.spawn(process.execPath, [VOS, 'attach', id], { cols: 90, rows: 25, env: { ...process.env, VOS_HOME: a.home } as Record<string, string> });
    let out = '';
    term.onData((d) => (out += d));
    try {
      await waitFor('the screen', () => out.includes('bash'));
      // What the terminal shows from here on (the move and the re-attach may well be done
      // before vos migrate returns): a fresh screen (reset) with the session on it again.
      const mark = out.length;
      const moved = await a.vos(['migrate', id, 'beta']);
      expect(moved.code).toBe(0);
      const there = /as ([0-9a-f]+)@beta/.exec(moved.stdout)![1]!;
      await waitFor('the screen again, from beta', () => {
        const after = out.slice(mark);
        return after.includes('\x1bc') && after.slice(after.lastIndexOf('\x1bc')).includes('bash');
      });
      term.write('echo typed-after-the-move-$((6*7))\r');
      // (The output, not the typed line's echo, which comes before bash ran it.)
      await waitFor('the output', () => out.includes('typed-after-the-move-42'));
      expect(await b.screen(there)).toMatch(/^typed-after-the-move-42$/m);
    } finally {
      term.kill();
    }
  }, 60_000);

  for (const { who, user } of runAsUsers('tail -f moves')) {
    it(`moves tail -f (inotify): the lines appended while it moves and after show up there (as ${who})`, async () => {
      const as = user ? { asUser: user } : {};
      const [a, b] = await m.pair(as, as);
      chmodSync(m.scratch, 0o755); // the user's tail reads the log there
      const log = join(m.scratch, `followed-${who}.log`);
      writeFileSync(log, 'line 1\n');
      // The user's own log (a build's, say): the restore raises the event for the line appended
      // while it moved by setting the file's times, which only its owner may.
      if (user) chownSync(log, user.uid, user.gid);
      const id = (await a.vos(['run', '-d', '--name', 'tail', '--', 'tail', '-f', log])).stdout.trim();
      await waitFor('the first line', async () => (await a.screen(id)).includes('line 1'));
      appendFileSync(log, 'line 2\n');
      await waitFor('the second line', async () => (await a.screen(id)).includes('line 2'));
      // A line appended while the session is being restored there (stopped here): the restore
      // raises an event for the changed file, or the watch there is live already and sees it.
      const onA = await a.connect();
      let appended = false;
      onA.onEvent((e) => {
        if (e.event === 'migration.progress' && e.phase === 'restoring' && !appended) {
          appended = true;
          appendFileSync(log, 'line 3 (during the move)\n');
        }
      });
      const moved = await onA.request('session.migrate', { id, peer: 'beta' });
      expect(appended).toBe(true);
      const there = moved.session.id.slice(0, moved.session.id.indexOf('@'));
      await waitFor('the line appended during the move, there', async () => (await b.screen(there)).includes('line 3 (during the move)'));
      appendFileSync(log, 'line 4\n');
      await waitFor('a line appended after the move, there', async () => (await b.screen(there)).includes('line 4'));
      const shown = (await b.screen(there)).split('\n').filter((l) => l.startsWith('line '));
      expect(shown).toEqual(['line 1', 'line 2', 'line 3 (during the move)', 'line 4']);
    }, 90_000);
  }

  it('sends an open file the target lacks along: the program reads on from it there', async () => {
    const data = join(m.scratch, 'notes');
    mkdirSync(data, { recursive: true });
    writeFileSync(join(data, 'notes.txt'), 'line one\nline two\nline three\n', { mode: 0o640 });
    // beta has an empty directory where alpha has the notes.
    const [a, b] = await m.pair({ mountPrelude: `mount -t tmpfs -o size=1m none ${data}` });
    const script = `exec 3<${data}/notes.txt; read -r l <&3; echo "got: $l"; while read -r x; do read -r l <&3; echo "got: $l"; done`;
    const id = (await a.vos(['run', '-d', '--name', 'notes', '--', 'sh', '-c', script])).stdout.trim();
    await waitFor('the first line', async () => (await a.screen(id)).includes('got: line one'));
    const moved = await a.vos(['migrate', id, 'beta', '--json']);
    expect(moved.code, moved.stderr).toBe(0);
    const r = JSON.parse(moved.stdout) as { session: { id: string }; filesSent: string[] };
    expect(r.filesSent).toEqual([join(data, 'notes.txt')]);
    const there = r.session.id.slice(0, r.session.id.indexOf('@'));
    await b.vos(['send', there, '\\r']);
    await waitFor('the next line, read there', async () => (await b.screen(there)).includes('got: line two'));
    // It is beta's own file now, with its permissions; nothing else was left beside it.
    const look = (await b.vos(['run', '-d', '--', 'sh', '-c', `stat -c '%a %s' ${data}/notes.txt; ls -A ${data} | wc -l; sleep 30`])).stdout.trim();
    // Its mode and size, then how many entries the directory has: the file alone.
    await waitFor('beta to show the file', async () => /^640 29\n\d+$/m.test(await b.screen(look)));
    expect(await b.screen(look)).toMatch(/^640 29\n1$/m);

    // A file sent along that changes before the session stops (here: while its 64 MiB are
    // copied) calls the move off: the copy there would miss the change. The session goes on
    // here, and beta keeps no copy of the file.
    const log = join(data, 'log.txt');
    writeFileSync(log, 'first\n');
    const onA = await a.connect();
    const { id: writer } = await onA.request('session.create', { command: 'sh', args: ['-c', `exec 3>>${log}; exec ${join(m.programs, 'dirtier')} 64 1`] });
    await onA.request('session.wait', { id: writer, pattern: '^tick \\d+ ok', timeoutMs: 60_000 });
    let appended = false;
    onA.onEvent((e) => {
      if (e.event === 'migration.progress' && e.phase === 'copying' && !appended) {
        appended = true;
        appendFileSync(log, 'second\n');
      }
    });
    const refused = await onA.request('session.migrate', { id: writer, peer: 'beta' }).then(
      () => null,
      (err: Error) => err.message,
    );
    expect(refused).toMatch(/log\.txt changed while it moved/);
    expect((await a.sessions()).find((s: { id: string }) => s.id === writer)?.state).toBe('running');
    // It runs on here: its ticks go on (past those on its screen now, whatever the move took).
    const lastTick = async (): Promise<number> =>
      Math.max(-1, ...(await onA.request('session.screen', { id: writer })).lines.map((l) => Number(/^tick (\d+) ok$/.exec(l)?.[1] ?? -1)));
    const tickNow = await lastTick();
    await waitFor('the writer to tick on here', async () => (await lastTick()) >= tickNow + 2, 60_000);
    const lister = (await b.vos(['run', '-d', '--', 'sh', '-c', `while :; do echo "files: $(ls -A ${data} | tr '\\n' ' ')"; sleep 0.2; done`])).stdout.trim();
    await waitFor('beta to have removed the file it got', async () => {
      const lines = (await b.screen(lister)).match(/^files: .*$/gm) ?? [];
      return lines.length > 0 && lines.at(-1)!.includes('notes.txt') && !lines.at(-1)!.includes('log.txt');
    });
  }, 120_000);

  it('leaves out the mapped files the target has alike; one that only looks alike there (same size and mtime) is carried after all', async () => {
    const dir = join(m.scratch, 'mapped');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'mapped.bin');
    const size = 8 * 1048576;
    writeFileSync(file, randomBytes(size));
    utimesSync(file, 1700000000, 1700000000); // a time the other machine's look-alike gets too
    const tick = (text: string): number => Math.max(-1, ...[...text.matchAll(/^tick (\d+) ok$/gm)].map((x) => Number(x[1])));
    /** mapper moved from alpha to beta: the bytes on the wire; it goes on checking its mapping there. */
    const move = async (bOptions: { mountPrelude?: string }): Promise<number> => {
      const [a, b] = await m.pair(bOptions);
      const id = (await a.vos(['run', '-d', '--name', 'mapper', '--', join(m.programs, 'mapper'), file])).stdout.trim();
      await waitFor('the mapping to be checked', async () => tick(await a.screen(id)) >= 1);
      const moved = await a.vos(['migrate', id, 'beta', '--json']);
      expect(moved.code, moved.stderr).toBe(0);
      const r = JSON.parse(moved.stdout) as { bytes: number; session: { id: string } };
      const there = r.session.id.split('@')[0]!;
      const before = tick(await b.screen(there));
      await waitFor('the mapping to check out there', async () => tick(await b.screen(there)) > before + 2);
      expect(await b.screen(there)).not.toMatch(/BAD/);
      return r.bytes;
    };
    // The same file there (the hosts share this one): its 8 MiB stay out of the image.
    expect(await move({})).toBeLessThan(size / 2);
    // A file there with the same size and mtime and other content: the restore finds it differs,
    // and the move is made again carrying it; the program there sees the content it mapped here.
    const lookAlike = `mount -t tmpfs -o size=16m none ${dir} && head -c ${size} /dev/zero > ${file} && touch -d @1700000000 ${file}`;
    expect(await move({ mountPrelude: lookAlike })).toBeGreaterThan(size);
  }, 120_000);

  it('a REPL whose history file differs there is refused, naming --take-as-is; with it, it moves and uses the file there', async () => {
    const dir = join(m.scratch, 'repl');
    mkdirSync(dir, { recursive: true });
    const history = join(dir, 'history');
    writeFileSync(history, '');
    // beta has its own history in that place.
    const [a, b] = await m.pair({ mountPrelude: `mount -t tmpfs -o size=1m none ${dir} && echo 'beta was here' > ${history}` });
    const onA = await a.connect();
    const { id } = await onA.request('session.create', { command: process.execPath, args: [], env: { NODE_REPL_HISTORY: history, PATH: process.env.PATH ?? '' } });
    await onA.request('session.wait', { id, pattern: '^> $|^>$', timeoutMs: 20_000 });
    await onA.request('session.input', { id, data: 'let x = 21\r' });
    await onA.request('session.wait', { id, pattern: '^undefined$', timeoutMs: 10_000 });
    await waitFor('node to write its history', () => readFileSync(history, 'utf8').includes('let x = 21'));
    const refused = await a.vos(['migrate', id, 'beta']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`${history} differs here (other content; to let the session use it as it is, ask again with --take-as-is ${history})`);
    const moved = await a.vos(['migrate', id, 'beta', '--take-as-is', history, '--json']);
    expect(moved.code, moved.stderr).toBe(0);
    const r = JSON.parse(moved.stdout) as { session: { id: string; restoreNote: string | null } };
    expect(r.session.restoreNote).toContain(`${history}: other content than at the checkpoint; the session uses it as it is here, as asked`);
    const there = r.session.id.slice(0, r.session.id.indexOf('@'));
    await b.vos(['send', there, 'x * 2\\r']);
    await waitFor('x * 2 there', async () => /^42$/m.test(await b.screen(there)));
    // alpha's history file is alpha's: the move left it as it was.
    expect(readFileSync(history, 'utf8')).toContain('let x = 21');
  }, 90_000);

  it('an SQLite writer: refused up front where its database would be another file; moved, and writing there, where the storage is shared', async () => {
    const dir = join(m.scratch, 'sqlite');
    mkdirSync(dir, { recursive: true });
    const db = join(dir, 'test.db');
    /** sqlite3 on the first machine of a new pair, with three rows written. */
    const writer = async (mountPrelude?: string): Promise<{ a: Awaited<ReturnType<typeof m.pair>>[0]; b: Awaited<ReturnType<typeof m.pair>>[1]; id: string }> => {
      const [a, b] = await m.pair(mountPrelude ? { mountPrelude } : {});
      const onA = await a.connect();
      const { id } = await onA.request('session.create', { command: 'sqlite3', args: [db], env: { PATH: process.env.PATH ?? '' } });
      await onA.request('session.wait', { id, pattern: '^sqlite> ?$', timeoutMs: 20_000 });
      // (The output, not the prompt already there or the typed line's echo, says the rows are in.)
      await onA.request('session.input', { id, data: "create table if not exists t(x); insert into t values (1), (2), (3); select 'rows-' || count(*) from t;\r" });
      await onA.request('session.wait', { id, pattern: '^rows-\\d+$', timeoutMs: 10_000 });
      return { a, b, id };
    };
    // beta has nothing in that place: the database would be a copy there, another file, to
    // which SQLite refuses to write ("attempt to write a readonly database"). Refused up front.
    const own = await writer(`mount -t tmpfs -o size=4m none ${dir}`);
    const refused = await own.a.vos(['migrate', own.id, 'beta']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`SQLite in the session has ${db} open and checks that it stays the same file; it is not here, and a copy would be another file`);
    await own.a.vos(['send', own.id, "insert into t values (4); select 'still-' || count(*) from t;\\r"]);
    await waitFor('it to write on where it is', async () => /^still-4$/m.test(await own.a.screen(own.id)));
    await own.a.vos(['kill', own.id]);

    // Storage both share (here: the same file system): it moves, and writes there.
    const shared = await writer();
    const moved = await shared.a.vos(['migrate', shared.id, 'beta', '--json']);
    expect(moved.code, moved.stderr).toBe(0);
    const there = (JSON.parse(moved.stdout) as { session: { id: string } }).session.id.split('@')[0]!;
    await shared.b.vos(['send', there, "insert into t values (5); select 'there-' || count(*) || '-' || sum(x) from t;\\r"]);
    await waitFor('the insert there', async () => /^there-\d+-\d+$/m.test(await shared.b.screen(there)), 20_000).catch(async (e: unknown) => {
      throw new Error(`${String(e)}\n--- screen there ---\n${await shared.b.screen(there)}`);
    });
    expect(await shared.b.screen(there)).not.toContain('readonly');
  }, 120_000);

  it('moves to a machine whose vdso differs (the proxy, forced there): the clocks keep working', async () => {
    const [a, b] = await m.pair({ env: { VOS_FORCE_VDSO_PROXY: '1' } });
    const id = (await a.vos(['run', '-d', '--', join(m.programs, 'clock')])).stdout.trim();
    await waitFor('ticking', async () => /tick=([3-9]|\d{2,}) clocks=ok/.test(await a.screen(id)));
    const r = await a.vos(['migrate', id, 'beta', '--json']);
    expect(r.stderr).toBe('');
    const there = (JSON.parse(r.stdout) as { session: { id: string } }).session.id.split('@')[0]!;
    await waitFor('ticking there', async () => /tick=\d*[1-9]\d clocks=ok/.test(await b.screen(there)));
    expect(await b.screen(there)).not.toContain('BROKEN');
  }, 60_000);

  it('keeps the monotonic clocks going on when the machines booted at different times (a time namespace there)', async () => {
    // alpha's clocks are a day ahead of beta's: without a time namespace, the moved program's
    // CLOCK_MONOTONIC would go back by a day.
    const [a, b] = await m.pair({}, { clockAheadSeconds: 86_400 });
    const id = (await a.vos(['run', '-d', '--', join(m.programs, 'clock')])).stdout.trim();
    await waitFor('ticking', async () => /tick=([3-9]|\d{2,}) clocks=ok/.test(await a.screen(id)));
    const r = await a.vos(['migrate', id, 'beta', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const moved = JSON.parse(r.stdout) as { session: { id: string; restoreNote: string | null } };
    expect(moved.session.restoreNote).toBeNull();
    const there = moved.session.id.split('@')[0]!;
    await waitFor('ticking there', async () => /tick=\d*[1-9]\d clocks=ok/.test(await b.screen(there)));
    expect(await b.screen(there)).not.toContain('BROKEN');
    // And back: alpha's own clock again (the namespace there is the host's plus a day).
    const back = await b.vos(['migrate', there, 'alpha', '--json']);
    expect(back.code, back.stderr).toBe(0);
    const home = (JSON.parse(back.stdout) as { session: { id: string } }).session.id.split('@')[0]!;
    const mark = Number(/tick=(\d+)/.exec([...(await a.screen(home)).matchAll(/tick=\d+/g)].at(-1)![0])![1]);
    await waitFor('ticking back here', async () => new RegExp(`tick=${mark + 10} clocks=ok`).test(await a.screen(home)));
    expect(await a.screen(home)).not.toContain('BROKEN');
  }, 60_000);

  it('says so when the clocks had to jump (a kernel without time namespaces there)', async () => {
    const [a] = await m.pair({ env: { VOS_TEST_NO_TIME_NAMESPACE: '1' } }, { clockAheadSeconds: 86_400 });
    const id = (await a.vos(['run', '-d', '--', join(m.programs, 'clock')])).stdout.trim();
    await waitFor('ticking', async () => /tick=([3-9]|\d{2,}) clocks=ok/.test(await a.screen(id)));
    const r = await a.vos(['migrate', id, 'beta']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ {2}note: its monotonic clocks jumped: .*no time namespaces/m);
  }, 60_000);

  it('moves live a program that keeps rewriting its memory: every page checks out there; and back, stop-and-copy, its memory in place as it arrives', async () => {
    const [a, b] = await m.pair();
    // 64 MiB, 50 random pages rewritten every 10 ms; every 100 ms it checks every page against
    // what it wrote and prints "tick N ok" (or "BAD"): a lost write or a stale page shows.
    // A tall terminal: the screen keeps seconds of its lines, from before the move to after it.
    const onA = await a.connect();
    const { id } = await onA.request('session.create', { command: join(m.programs, 'dirtier'), args: ['64', '50'], name: 'dirty', cols: 80, rows: 1500 });
    const lastTick = (text: string): number => Math.max(0, ...[...text.matchAll(/^tick (\d+) ok$/gm)].map((m) => Number(m[1])));
    const stepsOf = (text: string): number[] => [...text.matchAll(/^step (\d+)$/gm)].map((m) => Number(m[1]));
    await waitFor('it to run', async () => lastTick(await a.screen(id)) >= 3);
    const before = lastTick(await a.screen(id));
    const stepBefore = Math.max(...stepsOf(await a.screen(id)));

    const moved = await a.vos(['migrate', id, 'beta', '--json']);
    expect(moved.code, moved.stderr).toBe(0);
    const r = JSON.parse(moved.stdout) as { session: { id: string }; mode: string; rounds: number; fallback: string | null; downtimeMs: number; bytes: number };
    expect(r.fallback).toBeNull();
    expect(r.mode).toBe('live');
    expect(r.rounds).toBeGreaterThanOrEqual(2); // everything once, then what it wrote meanwhile
    const there = r.session.id.slice(0, r.session.id.indexOf('@'));
    await waitFor('it to check out there, several times', async () => lastTick(await b.screen(there)) >= before + 5, 20_000);
    const screen = await b.screen(there);
    expect(screen).not.toContain('BAD');
    // The steps it counts in memory run on without a repeat or a gap across the move: memory
    // older than the stop (a stale page sent ahead) would repeat steps.
    const steps = stepsOf(screen);
    expect(steps[0]).toBeLessThanOrEqual(stepBefore); // the screen reaches back to before the move
    expect(steps.slice(1).every((n, i) => n === steps[i]! + 1), steps.join(' ')).toBe(true);

    const back = await b.vos(['migrate', there, 'alpha', '--stop-and-copy', '--json']);
    expect(back.code, back.stderr).toBe(0);
    const r2 = JSON.parse(back.stdout) as { session: { id: string }; mode: string; rounds: number };
    expect(r2.mode).toBe('stop-and-copy');
    expect(r2.rounds).toBe(0);
    const home = r2.session.id.slice(0, r2.session.id.indexOf('@'));
    const atB = lastTick(await a.screen(home));
    await waitFor('it to check out back here', async () => lastTick(await a.screen(home)) >= atB + 3, 20_000);
    expect(await a.screen(home)).not.toContain('BAD');
    // Stop-and-copy is a pipeline: its pages were put in memory as they arrived, and moved into
    // place (the pages checked out above were those), not read from the image afterwards.
    const placed = [...a.log().matchAll(/([\d.]+) MiB of its memory moved into place as it arrived/g)].map((x) => Number(x[1]));
    expect(Math.max(0, ...placed), a.log().split('\n').slice(-20).join('\n')).toBeGreaterThanOrEqual(60);
    console.log(`live move of 64 MiB rewritten at 20 MB/s: ${r.rounds} rounds, ${r.bytes} bytes, stopped ${r.downtimeMs} ms`);
  }, 90_000);

  it('moves live programs the runtime is not in, stopped from outside: a static one rewriting its memory checks out there; a Go program ticks on', async () => {
    const [a, b] = await m.pair();
    const onA = await a.connect();
    // The static build of the program above: its written pages are tracked through a
    // userfaultfd pod init makes inside it (dump/ptrace-dump.c), not by a runtime.
    const { id } = await onA.request('session.create', { command: join(m.programs, 'static-dirtier'), args: ['64', '50'], name: 'static', cols: 80, rows: 1500 });
    const lastTick = (text: string): number => Math.max(0, ...[...text.matchAll(/^tick (\d+) ok$/gm)].map((m) => Number(m[1])));
    await waitFor('it to run', async () => lastTick(await a.screen(id)) >= 3);
    const before = lastTick(await a.screen(id));
    const moved = await a.vos(['migrate', id, 'beta', '--json']);
    expect(moved.code, moved.stderr).toBe(0);
    const r = JSON.parse(moved.stdout) as { session: { id: string }; mode: string; rounds: number; fallback: string | null; downtimeMs: number; bytes: number };
    expect(r.fallback).toBeNull();
    expect(r.mode).toBe('live');
    expect(r.rounds).toBeGreaterThanOrEqual(2);
    const there = r.session.id.slice(0, r.session.id.indexOf('@'));
    await waitFor('it to check out there, several times', async () => lastTick(await b.screen(there)) >= before + 5, 20_000);
    expect(await b.screen(there)).not.toContain('BAD');
    console.log(`live move of a static program, 64 MiB rewritten at 20 MB/s: ${r.rounds} rounds, stopped ${r.downtimeMs} ms`);

    // A Go program: built here (offline), eight goroutines on tickers, a re-arming timer, the GC.
    const src = join(PROGRAMS_SRC, 'go-ticker');
    const go = join(m.scratch, 'go-ticker');
    const goEnv = { ...process.env, GOCACHE: join(m.scratch, 'gocache'), GOPATH: join(m.scratch, 'gopath'), GOPROXY: 'off', GO111MODULE: 'off', GOFLAGS: '', CGO_ENABLED: '0' };
    execFileSync('go', ['build', '-o', go, join(src, 'main.go')], { env: goEnv, stdio: 'inherit' });
    chmodSync(m.scratch, 0o755);
    const { id: gid } = await onA.request('session.create', { command: go, args: [], name: 'go', cols: 120, rows: 40 });
    const ticks = (text: string, field: string): number => Math.max(-1, ...[...text.matchAll(new RegExp(`${field}=(\\d+)`, 'g'))].map((m) => Number(m[1])));
    await waitFor('the Go program to tick', async () => ticks(await a.screen(gid), 'tick') >= 3);
    const token = /token=(\w+)/.exec(await a.screen(gid))![1]!;
    const gm = await a.vos(['migrate', gid, 'beta', '--json']);
    expect(gm.code, gm.stderr).toBe(0);
    const gr = JSON.parse(gm.stdout) as { session: { id: string }; mode: string; downtimeMs: number };
    expect(gr.mode).toBe('live');
    const gthere = gr.session.id.slice(0, gr.session.id.indexOf('@'));
    const at = { tick: ticks(await b.screen(gthere), 'tick'), work: ticks(await b.screen(gthere), 'work'), after: ticks(await b.screen(gthere), 'after') };
    await waitFor('it to tick on there', async () => ticks(await b.screen(gthere), 'tick') >= at.tick + 10, 20_000);
    const screen = await b.screen(gthere);
    expect(ticks(screen, 'work')).toBeGreaterThan(at.work + 100);
    expect(ticks(screen, 'after')).toBeGreaterThan(at.after + 10);
    expect(screen).not.toMatch(new RegExp(`token=(?!${token})|panic|fatal error`));
    console.log(`live move of a Go program: stopped ${gr.downtimeMs} ms`);
  }, 120_000);

  it('moves an adopted bash (taken over from another terminal on alpha) to beta, with its job', async () => {
    const [a, b] = await m.pair();
    // bash under script on a terminal of this test, on alpha's network like its agent.
    let out = '';
    const job = 'sleep 900030';
    const term = pty.spawn('ip', ['netns', 'exec', a.host.ns, 'script', '-qfc', 'exec env PS1="other$ " bash --norc --noprofile', '/dev/null'], {
      cols: 80,
      rows: 24,
      env: { ...(process.env as Record<string, string>), PS1: 'other$ ' },
    });
    term.onData((d) => (out += d));
    try {
      await waitFor('bash to prompt', () => /other\$ $/.test(out));
      term.write(`${job} &\r`);
      await waitFor('its job', () => /\[1\] \d+/.test(out));
      const bash = Number(execFileSync('pgrep', ['-P', String(term.pid), '-x', 'bash'], { encoding: 'utf8' }).trim());
      const adopted = await a.vos(['adopt', String(bash), '--json']);
      expect(adopted.code, adopted.stderr).toBe(0);
      const id = (JSON.parse(adopted.stdout) as { id: string }).id;
      const moved = await a.vos(['migrate', id, 'beta', '--json']);
      expect(moved.code, moved.stderr).toBe(0);
      const r = JSON.parse(moved.stdout) as { session: { id: string }; mode: string; downtimeMs: number };
      const there = r.session.id.slice(0, r.session.id.indexOf('@'));
      const onB = await b.connect();
      await onB.request('session.input', { id: there, data: 'echo there-$$-$((6*7)); jobs\r' });
      await waitFor('bash to answer on beta, with its pid', async () => new RegExp(`^there-${bash}-42$`, 'm').test(await b.screen(there)));
      await waitFor('its job there', async () => new RegExp(`Running\\s+${job} &`).test(await b.screen(there)));
      expect(await a.sessions()).toEqual([]);
      console.log(`adopted bash moved (${r.mode}): stopped ${r.downtimeMs} ms`);
    } finally {
      term.kill('SIGKILL');
      try {
        execFileSync('pkill', ['-KILL', '-x', '-f', job]);
      } catch {
        /* gone */
      }
    }
  }, 60_000);
});
