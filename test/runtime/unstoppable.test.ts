/**
 * Programs that can be stopped neither by the runtime's stop signal nor from outside with ptrace
 * (Go and static programs are: outside-runtime.test.ts) are refused at once, before any process
 * of the pod is signaled (dump/stoppable.c): programs under a tracer (strace, gdb), and programs
 * in a seccomp sandbox (after a wait for them to end, as man's formatters soon do). The refusal
 * names the process and the reason, comes well before the freeze's 5 s acknowledgement timeout,
 * and the program (and its tracer) never sees the signal: it goes on as before. As root the set
 * runs as root and as nobody.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src-main/api/client.js';
import { startDaemon, vos, waitFor, type DaemonHandle } from '../helpers/agent-process.js';
import { buildTestPrograms, runAsUsers } from '../helpers/test-programs.js';

let programs: string;

beforeAll(() => {
  programs = buildTestPrograms('/tmp/vos-unstoppable-');
});

afterAll(() => {
  rmSync(programs, { recursive: true, force: true });
});

const runAs = runAsUsers('refusal tests');

describe.each(runAs)('checkpoint refuses programs the runtime cannot stop (as $who)', ({ user }) => {
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
    const s = await client.request('session.create', { command, args, env: env(), cwd: agent.home, cols: 100, rows: 30 });
    return s.id;
  }
  const waitText = (id: string, pattern: string, timeoutMs = 10_000): Promise<{ lines: string[] }> =>
    client.request('session.wait', { id, pattern, timeoutMs });
  const screen = async (id: string): Promise<string> => (await client.request('session.screen', { id })).lines.join('\n');

  /** vos checkpoint, expected to be refused: its message, after checking it was quick and left no file. */
  async function refused(id: string, name: string): Promise<string> {
    const out = join(agent.home, `${name}.vosimg`);
    // What the CLI itself takes on this machine now (node's start, the connection), to tell the
    // refusal's own time from it on a loaded machine.
    let started = Date.now();
    expect((await vos(agent.home, ['list', '--json'])).code).toBe(0);
    const overhead = Date.now() - started;
    started = Date.now();
    const r = await vos(agent.home, ['checkpoint', id, '--out', out, '--json']);
    const took = Date.now() - started;
    expect(r.code).toBe(1);
    expect(existsSync(out)).toBe(false);
    expect(r.stderr).not.toMatch(/did not stop/);
    expect(took - overhead).toBeLessThan(2500); // the freeze's acknowledgement timeout is 5 s
    return r.stderr;
  }

  /** The session's program goes on (prints a later number than before the refusal). */
  async function goesOn(id: string, prefix: string): Promise<void> {
    const latest = async (): Promise<number> => Math.max(-1, ...[...(await screen(id)).matchAll(new RegExp(`${prefix}(\\d+)`, 'g'))].map((m) => Number(m[1])));
    const last = await latest();
    await waitFor('the program to go on', async () => (await latest()) >= last + 3);
  }

  it('refuses a program under strace at once, naming the tracer; neither sees the signal', async () => {
    const id = await run('strace', ['-f', '-o', '/dev/null', join(programs, 'counter'), '100']);
    await waitText(id, 'count=3$');
    const msg = await refused(id, 'strace');
    expect(msg).toMatch(/process \d+ \(counter\) is being traced by process \d+ \(strace\)/);
    await goesOn(id, 'count=');
    expect(await screen(id)).not.toMatch(/SIG62|SIGRT|Real-time signal/);
    await client.request('session.kill', { id, signal: 'KILL' });
  });

  it('refuses a program under gdb at once, naming the debugger; gdb never shows the signal', async () => {
    const id = await run('gdb', ['-nx', '-batch', '-ex', 'run', '--args', join(programs, 'counter'), '100']);
    await waitText(id, 'count=3$', 30_000);
    const msg = await refused(id, 'gdb');
    expect(msg).toMatch(/process \d+ \(counter\) is being traced by process \d+ \(gdb\)/);
    await goesOn(id, 'count=');
    expect(await screen(id)).not.toMatch(/SIG62|received signal/);
    await client.request('session.kill', { id, signal: 'KILL' });
  });

  it('refuses a program in a seccomp sandbox, after waiting 2 s for it to end, naming it and why; it goes on', async () => {
    // Its filter refuses the runtime's acknowledgement (as man-db's does for its formatters):
    // the freeze used to wait 5 s for it and fail with "did not stop".
    const id = await run(join(programs, 'sandboxed'), ['0']);
    await waitText(id, '^sandboxed 3$');
    const out = join(agent.home, 'sandboxed.vosimg');
    const started = Date.now();
    const r = await vos(agent.home, ['checkpoint', id, '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/process \d+ \(sandboxed\) runs in a seccomp sandbox, which a restore could not put back/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    expect(existsSync(out)).toBe(false);
    await goesOn(id, 'sandboxed ');
    await client.request('session.kill', { id, signal: 'KILL' });
  });

  it('refuses at once a pod with a stopped job (Ctrl-Z), naming it; continued, it is checkpointed', async () => {
    const id = await run('sh', ['-c', `${join(programs, 'counter')} 100 & job=$!; sleep 0.3; kill -STOP $job; echo "stopped $job"; wait`]);
    await waitText(id, '^stopped \\d+$');
    const msg = await refused(id, 'stopped');
    expect(msg).toMatch(/process \d+ \(counter\) is stopped \(Ctrl-Z or SIGSTOP\), which vOS cannot carry yet; continue it \(fg or bg\) first/);
    // Continued (its pid here is the pod's, not the machine's), it counts on and is checkpointed.
    execFileSync('pkill', ['-CONT', '-f', `^${join(programs, 'counter')} 100$`]);
    await goesOn(id, 'count=');
    const r = await vos(agent.home, ['checkpoint', id, '--out', join(agent.home, 'continued.vosimg'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    await client.request('session.kill', { id, signal: 'KILL' });
  });

  it("waits for a short-lived sandboxed process to end (man's formatting pipeline) and checkpoints without it", async () => {
    const id = await run('sh', ['-c', `${join(programs, 'sandboxed')} 700; echo "sandbox ended"; exec ${join(programs, 'counter')} 100`]);
    await waitText(id, '^sandboxed 1$');
    const r = await vos(agent.home, ['checkpoint', id, '--out', join(agent.home, 'after-sandbox.vosimg'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(await screen(id)).toMatch(/^sandbox ended$/m);
    await waitText(id, 'count=3$');
    await client.request('session.kill', { id, signal: 'KILL' });
  });
});
