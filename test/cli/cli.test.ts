/**
 * The `vos` command end to end, as scripts and people use it: real agent, real bash, and for
 * `attach` a real terminal (a pty driving the vos process).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pty from '@lydell/node-pty';
import xtermHeadless from '@xterm/headless';
import { afterEach, describe, expect, it } from 'vitest';
import { endHosts, startDaemon, tempHome, vos, waitFor, VOS, type DaemonHandle } from '../helpers/agent-process.js';
import type { SessionInfo } from '../../src-main/api/protocol.js';

/** The rows a terminal of this size shows after `data` (what the user of a real one sees). */
async function rowsShown(data: string, cols: number, rows: number): Promise<string[]> {
  const t = new xtermHeadless.Terminal({ cols, rows, allowProposedApi: true });
  try {
    await new Promise<void>((resolve) => t.write(data, resolve));
    const b = t.buffer.active;
    return Array.from({ length: rows }, (_, i) => b.getLine(b.viewportY + i)?.translateToString(true) ?? '');
  } finally {
    t.dispose();
  }
}

const daemons: DaemonHandle[] = [];
const cleanups: Array<() => void | Promise<void>> = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await Promise.all(daemons.splice(0).map((d) => d.stop()));
});

async function daemon(): Promise<DaemonHandle> {
  const d = await startDaemon();
  daemons.push(d);
  return d;
}

const BASH = ['bash', '--norc', '--noprofile'];
const PLAIN_PROMPT = { PS1: 'vos$ ' };

describe('vos command', () => {
  it('runs bash detached, types into it, waits for output, reads the screen and lists it', async () => {
    const d = await daemon();
    const run = await vos(d.home, ['run', '--detach', '--json', '--name', 'shell', '--', ...BASH], PLAIN_PROMPT);
    expect(run.code).toBe(0);
    const { id } = JSON.parse(run.stdout) as { id: string };
    expect(id).toMatch(/^[0-9a-f]{6}$/);

    expect((await vos(d.home, ['wait', id, '--text', '^vos\\$$', '--timeout', '10'])).code).toBe(0);
    expect((await vos(d.home, ['send', id, 'echo "sum=$((40+2))"\\r'])).code).toBe(0);
    const waited = await vos(d.home, ['wait', id, '--text', '^sum=42$', '--timeout', '10']);
    expect(waited).toMatchObject({ code: 0, stderr: '' });

    const screen = await vos(d.home, ['screen', id]);
    const lines = screen.stdout.split('\n');
    expect(lines).toContain('sum=42');
    expect(lines).toContain('vos$ echo "sum=$((40+2))"');
    expect(lines.every((l) => l === l.trimEnd())).toBe(true);
    expect(lines.length).toBe(24 + 1); // 24 rows and the final newline

    const json = JSON.parse((await vos(d.home, ['screen', id, '--json'])).stdout) as { lines: string[]; cols: number; rows: number };
    expect(json).toMatchObject({ cols: 80, rows: 24 });
    expect(json.lines).toContain('sum=42');

    const ls = JSON.parse((await vos(d.home, ['ls', '--json'])).stdout) as SessionInfo[];
    expect(ls).toHaveLength(1);
    expect(ls[0]).toMatchObject({ id, name: 'shell', command: 'bash', state: 'running', cwd: process.cwd() });
    const table = (await vos(d.home, ['ls'])).stdout;
    expect(table).toMatch(/^ID\s+NAME\s+STATE\s+PID\s+UPTIME\s+COMMAND$/m);
    expect(table).toContain(`${id}  shell`);

    // Control characters through escapes: Ctrl-C interrupts the foreground command.
    // (Waits for the output, not 'sleep 100': the typed line's echo shows that before bash runs it.)
    await vos(d.home, ['send', id, 'echo "sleeping-$((50*2))"; sleep 100\\r']);
    await vos(d.home, ['wait', id, '--text', '^sleeping-100$']);
    await vos(d.home, ['send', id, '\\x03']);
    await vos(d.home, ['send', id, 'echo "after=$?"\\r']);
    expect((await vos(d.home, ['wait', id, '--text', 'after=130', '--timeout', '10'])).code).toBe(0);

    // Resize reaches the program.
    expect((await vos(d.home, ['resize', id, '100', '30'])).code).toBe(0);
    await vos(d.home, ['send', id, 'stty size\\r']);
    expect((await vos(d.home, ['wait', id, '--text', '^30 100$', '--timeout', '10'])).code).toBe(0);

    // The session ends, stays listed with its status, and can be removed.
    await vos(d.home, ['send', id, 'exit 7\\r']);
    await waitFor('the session to end', async () => {
      const s = JSON.parse((await vos(d.home, ['ls', '--json'])).stdout) as SessionInfo[];
      return s[0]?.state === 'exited' && s[0];
    });
    const ended = JSON.parse((await vos(d.home, ['ls', '--json'])).stdout) as SessionInfo[];
    expect(ended[0]!.exit).toEqual({ code: 7, signal: null });
    expect((await vos(d.home, ['ls'])).stdout).toContain('exited (7)');
    expect((await vos(d.home, ['rm', id])).code).toBe(0);
    expect(JSON.parse((await vos(d.home, ['ls', '--json'])).stdout)).toEqual([]);
  });

  it('kills with a signal, refuses to remove a running session without --force, and reports timeouts', async () => {
    const d = await daemon();
    const id = (await vos(d.home, ['run', '-d', '--', 'sleep', '300'])).stdout.trim();
    const rm = await vos(d.home, ['rm', id]);
    expect(rm.code).toBe(1);
    expect(rm.stderr).toMatch(/still running/);
    const wait = await vos(d.home, ['wait', id, '--text', 'never', '--timeout', '0.3']);
    expect(wait.code).toBe(1);
    expect(wait.stderr).toMatch(/timed out after 0.3 s waiting for \/never\//);
    expect((await vos(d.home, ['kill', id, '--signal', 'TERM'])).code).toBe(0);
    await waitFor('the exit', async () => (await vos(d.home, ['ls'])).stdout.includes('exited (SIGTERM)'));
    const again = await vos(d.home, ['kill', id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/has ended \(killed by SIGTERM\)/);
  });

  it('gives clear errors: no agent, unknown session, bad usage, bad escapes', async () => {
    const home = tempHome();
    cleanups.push(() => void import('node:fs').then((fs) => fs.rmSync(home, { recursive: true, force: true })));
    const none = await vos(home, ['ls']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(`no agent is running for ${home}`);
    expect(none.stderr).toContain("start one with 'vos daemon'");

    const d = await daemon();
    const unknown = await vos(d.home, ['screen', 'zzzzzz']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no session "zzzzzz"/);
    const usage = await vos(d.home, ['resize', 'x', 'wide', '10']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/COLS must be a whole number/);
    expect((await vos(d.home, ['frobnicate'])).code).toBe(2);
    expect((await vos(d.home, ['wait', 'x'])).stderr).toMatch(/--text REGEX is required/);
    // The pattern given as a second word: named as what is too much, not as a missing ID.
    const extra = await vos(d.home, ['wait', 'x', 'prompt>']);
    expect(extra.code).toBe(2);
    expect(extra.stderr).toContain('vos wait: expected ID and options only; "prompt>" is more than that');
    const id = (await vos(d.home, ['run', '-d', '--', 'cat'])).stdout.trim();
    const badEscape = await vos(d.home, ['send', id, 'a\\q']);
    expect(badEscape.code).toBe(1);
    expect(badEscape.stderr).toMatch(/unknown escape \\q/);
    const notFound = await vos(d.home, ['run', '-d', '--', 'no-such-program-vos']);
    expect(notFound.code).toBe(1);
    expect(notFound.stderr).toMatch(/command not found/);
    const notTty = await vos(d.home, ['run', '--', 'cat']);
    expect(notTty.code).toBe(1);
    expect(notTty.stderr).toMatch(/add --detach/);
  });

  it('prints help for every command', async () => {
    const home = tempHome();
    cleanups.push(() => void import('node:fs').then((fs) => fs.rmSync(home, { recursive: true, force: true })));
    const main = await vos(home, ['--help']);
    expect(main.code).toBe(0);
    const names = [...main.stdout.matchAll(/^ {2}(\w+) {2,}/gm)].map((m) => m[1]!);
    expect(names).toEqual(expect.arrayContaining(['run', 'ls', 'attach', 'kill', 'resize', 'send', 'screen', 'wait', 'daemon']));
    for (const name of names) {
      const help = await vos(home, [name, '--help']);
      expect(help.code, name).toBe(0);
      expect(help.stdout, name).toMatch(new RegExp(`^usage: vos ${name}`));
    }
  }, 90_000); // a node process per command: slow on a busy machine

  it('starts a background agent when none is running, as tmux does', async () => {
    const home = tempHome();
    const run = await vos(home, ['run', '--detach', '--', 'sleep', '30']);
    cleanups.push(async () => {
      const { pid } = JSON.parse(readFileSync(`${home}/agent.pid`, 'utf8')) as { pid: number };
      process.kill(pid, 'SIGTERM');
      await waitFor('the background agent to stop', () => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      });
      await endHosts(home); // its session outlives it
      (await import('node:fs')).rmSync(home, { recursive: true, force: true });
    });
    expect(run.code).toBe(0);
    const status = await vos(home, ['status', '--json']);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ home, protocol: 1 });
    expect((await vos(home, ['ls'])).stdout).toContain('sleep 30');
  });

  it('attaches a real terminal: screen replay, typing, resize, and the detach key', async () => {
    const d = await daemon();
    const id = (await vos(d.home, ['run', '-d', '--', ...BASH], PLAIN_PROMPT)).stdout.trim();
    await vos(d.home, ['send', id, 'echo before-attach\\r']);
    await vos(d.home, ['wait', id, '--text', '^before-attach$']);

    const term = pty.spawn(process.execPath, [VOS, 'attach', id], {
      cols: 90,
      rows: 20,
      env: { ...process.env, VOS_HOME: d.home } as Record<string, string>,
    });
    let seen = '';
    term.onData((data) => (seen += data));
    const exited = new Promise<number>((resolve) => term.onExit(({ exitCode }) => resolve(exitCode)));
    cleanups.push(() => term.kill());

    await waitFor('the replayed screen', () => seen.includes('before-attach'));
    // How to detach, over the bottom row, and the program's screen above it.
    await waitFor('the detach hint', () => seen.includes('detaches'));
    let shown = await rowsShown(seen, 90, 20);
    expect(shown[19]!.trimEnd()).toBe(` vos: attached to bash. Ctrl-\\ detaches; it keeps running.`);
    expect(shown).toContain('before-attach');
    // The session took the attached terminal's size.
    await waitFor('the resize', async () => (JSON.parse((await vos(d.home, ['ls', '--json'])).stdout) as SessionInfo[])[0]!.cols === 90);
    term.write('echo typed-$((2+3))\r');
    await waitFor('typed output in the attached terminal', () => seen.includes('typed-5'));
    // The first key took the hint away: the screen is the program's alone again.
    await waitFor('the hint gone', async () => !(await rowsShown(seen, 90, 20)).some((r) => r.includes('detaches')));
    shown = await rowsShown(seen, 90, 20);
    expect(shown).toContain('before-attach');
    expect(shown, JSON.stringify(seen)).toContain('typed-5');
    term.resize(100, 25);
    await waitFor('the new size', async () => (JSON.parse((await vos(d.home, ['ls', '--json'])).stdout) as SessionInfo[])[0]!.cols === 100);
    term.write('\x1c'); // Ctrl-\ detaches
    expect(await exited).toBe(0);
    expect(seen).toContain(`[detached from session ${id}`);
    // On a clean screen: the program's is cleared away before the word about it.
    expect(seen).toMatch(/\x1b\[H\x1b\[2J\[detached from session /);
    const after = JSON.parse((await vos(d.home, ['ls', '--json'])).stdout) as SessionInfo[];
    expect(after[0]).toMatchObject({ state: 'running', viewers: 0 });
    expect((await vos(d.home, ['screen', id])).stdout).toContain('typed-5');
  });

  it('vos restore on a terminal attaches to the restored session; -d prints its id instead', async () => {
    const d = await daemon();
    const id = (await vos(d.home, ['run', '-d', '--', ...BASH], PLAIN_PROMPT)).stdout.trim();
    await vos(d.home, ['send', id, 'echo before-checkpoint\\r']);
    await vos(d.home, ['wait', id, '--text', '^before-checkpoint$']);
    const image = join(d.home, 'attach.vosimg');
    expect((await vos(d.home, ['checkpoint', id, '--out', image])).code).toBe(0);
    await vos(d.home, ['kill', id, '--signal', 'KILL']);
    const term = pty.spawn(process.execPath, [VOS, 'restore', image], { cols: 90, rows: 20, env: { ...process.env, VOS_HOME: d.home } as Record<string, string> });
    let seen = '';
    term.onData((data) => (seen += data));
    const exited = new Promise<number>((resolve) => term.onExit(({ exitCode }) => resolve(exitCode)));
    cleanups.push(() => term.kill());
    await waitFor('the restored screen', () => seen.includes('before-checkpoint'));
    term.write('echo restored-$((2+3))\r');
    await waitFor('typed output in the attached terminal', () => seen.includes('restored-5'));
    term.write('\x1c'); // Ctrl-\ detaches
    expect(await exited).toBe(0);
    expect(seen).toMatch(/\[detached from session [0-9a-f]+; it keeps running/);
    // -d on a terminal: the id, and no attach.
    const detached = pty.spawn(process.execPath, [VOS, 'restore', '-d', image], { cols: 90, rows: 20, env: { ...process.env, VOS_HOME: d.home } as Record<string, string> });
    let printed = '';
    detached.onData((data) => (printed += data));
    expect(await new Promise<number>((resolve) => detached.onExit(({ exitCode }) => resolve(exitCode)))).toBe(0);
    expect(printed.trim()).toMatch(/^[0-9a-f]{6}$/);
  });

  it('exits attach with the program\'s status when it ends', async () => {
    const d = await daemon();
    const id = (await vos(d.home, ['run', '-d', '--', 'sh', '-c', 'read x; exit 4'])).stdout.trim();
    const term = pty.spawn(process.execPath, [VOS, 'attach', id], {
      cols: 80,
      rows: 24,
      env: { ...process.env, VOS_HOME: d.home } as Record<string, string>,
    });
    let seen = '';
    term.onData((data) => (seen += data));
    const exited = new Promise<number>((resolve) => term.onExit(({ exitCode }) => resolve(exitCode)));
    cleanups.push(() => term.kill());
    await waitFor('the attach to take', async () => (JSON.parse((await vos(d.home, ['ls', '--json'])).stdout) as SessionInfo[])[0]!.viewers === 1);
    term.write('\r');
    expect(await exited).toBe(4);
    expect(seen).toContain('ended: exit status 4');
  });
});
