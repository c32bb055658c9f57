/**
 * Programs the injected runtime cannot reach (dump/ptrace-dump.c): a statically linked C program
 * and Go programs (static and with cgo, many goroutines and timers) are stopped from outside with
 * ptrace, checkpointed into the same image format, and restored by the same restorer. The
 * checkpoint's result says which processes were stopped so and why. A program that runs on after
 * the checkpoint goes on exactly where it was, and a restored one can be checkpointed again (the
 * stop's own mapping of the first checkpoint is gone then). As root the set runs as root and as
 * nobody.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src-main/api/client.js';
import type { CheckpointResult } from '../../src-main/api/protocol.js';
import { startDaemon, vos, waitFor, type DaemonHandle } from '../helpers/agent-process.js';
import { PROGRAMS_SRC, buildTestPrograms, runAsUsers } from '../helpers/test-programs.js';

let programs: string;

beforeAll(() => {
  programs = buildTestPrograms('/tmp/vos-outside-');
  // Go, offline, with its cache in the temp dir: a stdlib-only program builds in a few seconds.
  const src = join(PROGRAMS_SRC, 'go-ticker');
  const env = { ...process.env, GOCACHE: join(programs, 'gocache'), GOPATH: join(programs, 'gopath'), GOPROXY: 'off', GO111MODULE: 'off', GOFLAGS: '' };
  execFileSync('go', ['build', '-o', join(programs, 'go-static'), join(src, 'main.go')], { env: { ...env, CGO_ENABLED: '0' }, stdio: 'inherit' });
  execFileSync('go', ['build', '-o', join(programs, 'go-dynamic'), '.'], { cwd: src, env: { ...env, CGO_ENABLED: '1' }, stdio: 'inherit' });
  rmSync(join(programs, 'gocache'), { recursive: true, force: true });
  rmSync(join(programs, 'gopath'), { recursive: true, force: true });
}, 180_000);

afterAll(() => {
  rmSync(programs, { recursive: true, force: true });
});

const runAs = runAsUsers('stop-from-outside tests');

describe.each(runAs)('programs without the runtime, stopped from outside (as $who)', ({ user }) => {
  let agent: DaemonHandle;
  let client: ApiClient;
  const env = (): Record<string, string> => ({ ...(process.env as Record<string, string>), HOME: agent.home });

  beforeAll(async () => {
    agent = await startDaemon(user ? { asUser: user } : {});
    client = await agent.connect();
  });

  afterAll(async () => {
    await agent?.stop();
  });

  async function run(command: string, args: string[]): Promise<string> {
    const s = await client.request('session.create', { command, args, env: env(), cwd: agent.home, cols: 120, rows: 30 });
    return s.id;
  }
  const waitText = (id: string, pattern: string, timeoutMs = 10_000): Promise<{ lines: string[] }> =>
    client.request('session.wait', { id, pattern, timeoutMs });
  const screen = async (id: string): Promise<string> => (await client.request('session.screen', { id })).lines.join('\n');
  const ended = (id: string): Promise<unknown> =>
    waitFor('the session to end', async () => (await client.request('session.list', {})).find((s) => s.id === id)?.state === 'exited');

  async function checkpoint(id: string, name: string, stop = false): Promise<{ file: string; result: CheckpointResult }> {
    const file = join(agent.home, `${name}.vosimg`);
    const r = await vos(agent.home, ['checkpoint', id, '--out', file, '--json', ...(stop ? ['--stop'] : [])]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const result = JSON.parse(r.stdout) as CheckpointResult;
    expect(result.bytes).toBe(statSync(file).size);
    return { file, result };
  }

  async function restore(file: string): Promise<string> {
    const r = await vos(agent.home, ['restore', file, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    return (JSON.parse(r.stdout) as { id: string }).id;
  }

  /** The machine's pid of the one process running `command line` exactly. */
  const pidOf = (commandLine: string): number => Number(execFileSync('pgrep', ['-x', '-f', commandLine], { encoding: 'utf8' }).trim());
  /**
   * What vOS left in a process (include/vos-control.h's leftover marks, in its anonymous memory):
   * the stop's scratch mapping (mark at the start; there after a restore, never after the process
   * ran on) and the restore's trampoline pages (mark 64 bytes into the area). The next checkpoint
   * removes them.
   */
  const leftovers = (pid: number): { scratch: number; trampoline: number } => {
    const found = { scratch: 0, trampoline: 0 };
    const fd = openSync(`/proc/${pid}/mem`, 'r');
    try {
      for (const line of readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
        const m = /^([0-9a-f]+)-[0-9a-f]+ rw-p \S+ \S+ 0\s*$/.exec(line);
        if (!m) continue;
        const start = parseInt(m[1]!, 16);
        for (const [off, kind] of [[0, 'scratch'], [64, 'trampoline']] as const) {
          const mark = Buffer.alloc(32);
          if (readSync(fd, mark, 0, 32, start + off) !== 32) continue;
          if (mark.subarray(0, 16).toString('latin1') === 'vOS leftover v1\0' && Number(mark.readBigUInt64LE(16)) === start - (off ? 4096 : 0)) found[kind]++;
        }
      }
    } finally {
      closeSync(fd);
    }
    return found;
  };

  /** The largest value of `field=N` on the screen. */
  const latest = async (id: string, field: string): Promise<number> =>
    Math.max(-1, ...[...(await screen(id)).matchAll(new RegExp(`${field}=(\\d+)`, 'g'))].map((m) => Number(m[1])));

  it('a static C counter: checkpointed (the result names it), goes on, restored with its token, and again', async () => {
    const id = await run(join(programs, 'static-counter'), ['21']);
    const before = await waitText(id, 'count=5$');
    const token = /token=(\w+)/.exec(before.lines.join('\n'))![1]!;
    const { file, result } = await checkpoint(id, 'static');
    expect(result.stoppedFromOutside).toEqual([expect.stringMatching(/^process \d+ \(static-counter\): statically linked$/)]);
    // The original runs on where it was, without the stop's mapping.
    const at = await latest(id, 'count');
    await waitFor('the original to go on', async () => (await latest(id, 'count')) >= at + 5);
    const commandLine = `${join(programs, 'static-counter')} 21`;
    expect(leftovers(pidOf(commandLine))).toEqual({ scratch: 0, trampoline: 0 });
    await client.request('session.kill', { id, signal: 'KILL' });
    await ended(id);
    const rid = await restore(file);
    await waitText(rid, `token=${token} count=(\\d*[2-9]\\d)$`);
    expect(await screen(rid)).not.toMatch(new RegExp(`token=(?!${token})`));
    expect(leftovers(pidOf(commandLine))).toEqual({ scratch: 1, trampoline: 1 }); // its frames were there
    // A second generation: the restored process is stopped from outside again.
    const second = await checkpoint(rid, 'static-2', true);
    expect(second.result.stoppedFromOutside).toHaveLength(1);
    await ended(rid);
    const rid2 = await restore(second.file);
    const n = await latest(rid2, 'count');
    await waitText(rid2, `token=${token} count=(?:${n + 3}|${n + 4}|${n + 5})$`);
    // The first restore's removed by the second checkpoint; the second restore's are there.
    expect(leftovers(pidOf(commandLine))).toEqual({ scratch: 1, trampoline: 1 });
    await client.request('session.kill', { id: rid2, signal: 'KILL' });
  });

  for (const kind of ['static', 'dynamic']) {
    it(`a ${kind}ally linked Go program with goroutines and timers: checkpoint, restore, its goroutines and timers go on`, async () => {
      const id = await run(join(programs, `go-${kind}`), []);
      const before = await waitText(id, '^go tick=5 ');
      const token = /token=(\w+)/.exec(before.lines.join('\n'))![1]!;
      const { file, result } = await checkpoint(id, `go-${kind}`, true);
      expect(result.stoppedFromOutside).toEqual([expect.stringMatching(new RegExp(`^process \\d+ \\(go-${kind}\\): a Go program$`))]);
      expect(result.threads).toBeGreaterThan(1);
      await ended(id);
      const rid = await restore(file);
      const tick = await latest(rid, 'tick');
      const work = await latest(rid, 'work');
      const after = await latest(rid, 'after');
      // Ten more ticks: the main loop's sleep, the eight tickers and the re-arming timer all run.
      await waitFor('the restored program to tick on', async () => (await latest(rid, 'tick')) >= tick + 10, 20_000);
      expect(await latest(rid, 'work')).toBeGreaterThan(work + 100);
      expect(await latest(rid, 'after')).toBeGreaterThan(after + 10);
      expect(await screen(rid)).not.toMatch(new RegExp(`token=(?!${token})|panic|fatal error|SIG`));
      // And once more from the restored one, which runs on after it.
      const again = await checkpoint(rid, `go-${kind}-2`);
      expect(again.result.stoppedFromOutside).toHaveLength(1);
      const t2 = await latest(rid, 'tick');
      await waitFor('it to go on after the second checkpoint', async () => (await latest(rid, 'tick')) >= t2 + 5);
      expect(leftovers(pidOf(join(programs, `go-${kind}`)))).toEqual({ scratch: 0, trampoline: 0 });
      await client.request('session.kill', { id: rid, signal: 'KILL' });
    });
  }

  it('a static program keeps its signal state: handlers, an interval timer, a pending signal, the alternate stack (asked inside it)', async () => {
    const id = await run(join(programs, 'static-signals'), []);
    await waitText(id, '^ready$');
    await client.request('session.input', { id, data: '\r' });
    const before = Number(/alarms=(\d+)/.exec((await waitText(id, '^alarms=\\d+')).lines.join('\n'))![1]);
    const { file, result } = await checkpoint(id, 'static-signals', true);
    expect(result.stoppedFromOutside).toHaveLength(1);
    await ended(id);
    const rid = await restore(file);
    const reports = async (): Promise<string[]> => (await screen(rid)).split('\n').filter((l) => l.startsWith('alarms='));
    const seen = (await reports()).length;
    // Its handler for SIGALRM, the timer driving it, SIGUSR2 pending behind its mask, its altstack.
    await waitFor('the timer to fire on', async () => {
      await client.request('session.input', { id: rid, data: '\r' });
      return (await reports()).length > seen && Number(/alarms=(\d+)/.exec((await reports()).at(-1)!)![1]) > before + 5;
    });
    expect((await reports()).at(-1)).toMatch(/usr2=0 pending-usr2=1 altstack=kept on-altstack=0 stray=0$/);
    await client.request('session.input', { id: rid, data: 'u\r' });
    await waitText(rid, 'usr2=1 pending-usr2=0 altstack=kept on-altstack=1 stray=0');
    await client.request('session.kill', { id: rid, signal: 'KILL' });
  });

  it('a static multi-threaded counter: every thread counts on, each with its own TLS', async () => {
    const id = await run(join(programs, 'static-mt-counter'), []);
    await waitText(id, 'threads: \\d{2}');
    const { file, result } = await checkpoint(id, 'static-mt', true);
    expect(result.threads).toBe(5);
    await ended(id);
    const rid = await restore(file);
    const last = (text: string): number[] => {
      const m = [...text.matchAll(/threads: (\d+) (\d+) (\d+) (\d+) tls-errors=(\d+)/g)].at(-1)!;
      return m.slice(1).map(Number);
    };
    const first = last(await screen(rid));
    await waitFor('every thread to count on', async () => last(await screen(rid)).slice(0, 4).every((n, i) => n > first[i]! + 10));
    expect(last(await screen(rid))[4]).toBe(0);
    await client.request('session.kill', { id: rid, signal: 'KILL' });
  });

  it("a program that took the stop signal over with a raw rt_sigaction: stopped from outside once it did not answer, and restored", async () => {
    const id = await run(join(programs, 'own-stop-signal'), []);
    const before = await waitText(id, 'count=5 ');
    const token = /token=(\w+)/.exec(before.lines.join('\n'))![1]!;
    const { file, result } = await checkpoint(id, 'own-stop-signal', true);
    expect(result.stoppedFromOutside).toEqual([expect.stringMatching(/\(own-stop-signal\): its own handler replaced the runtime's for vOS's stop signal$/)]);
    await ended(id);
    const rid = await restore(file);
    const n = await latest(rid, 'count');
    await waitText(rid, `token=${token} count=${n + 5} got62=1$`); // its handler saw the stop signal once
  }, 30_000);

  it('a shell (with the runtime) running a static program: both in one image, only the static one from outside', async () => {
    const id = await run('sh', ['-c', `${join(programs, 'static-counter')} 20; echo "shell after"`]);
    await waitText(id, 'count=3$');
    const { file, result } = await checkpoint(id, 'mixed', true);
    expect(result.processes).toBe(2);
    expect(result.stoppedFromOutside).toEqual([expect.stringMatching(/\(static-counter\): statically linked$/)]);
    await ended(id);
    const rid = await restore(file);
    const n = await latest(rid, 'count');
    await waitText(rid, `count=${n + 3}$`);
    // The counter ends on SIGTERM; the restored shell goes on after it.
    execFileSync('pkill', ['-TERM', '-f', `^${join(programs, 'static-counter')} 20$`]);
    await waitText(rid, '^shell after$');
  });
});
