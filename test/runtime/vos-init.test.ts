/**
 * vos-init, the first process of a session: exit status, signal forwarding, the terminal's
 * foreground group, and reaping. Built by `npm run build:runtime`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import pty from '@lydell/node-pty';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/agent-process.js';
import { RUNTIME_DIR } from '../helpers/runtime-dir.js';

const INIT = join(RUNTIME_DIR, 'vos-init');

describe('vos-init', () => {
  it('is built', () => {
    expect(existsSync(INIT), `${INIT} (run npm run build:runtime)`).toBe(true);
  });

  it('ends like its program: same exit status, or killed by the same signal; 127 for a missing program', () => {
    expect(spawnSync(INIT, ['--', 'sh', '-c', 'exit 9']).status).toBe(9);
    expect(spawnSync(INIT, ['--', 'sh', '-c', 'kill -TERM $$']).signal).toBe('SIGTERM');
    expect(spawnSync(INIT, ['--no-pod', '--', 'sh', '-c', 'exit 3']).status).toBe(3);
    const missing = spawnSync(INIT, ['--', 'no-such-program-vos'], { encoding: 'utf8' });
    expect(missing.status).toBe(127);
    expect(missing.stderr).toMatch(/cannot run no-such-program-vos/);
    expect(spawnSync(INIT, ['sh'], { encoding: 'utf8' }).status).toBe(2);
  });

  it('runs the program as pid 2 of its own pid namespace, with its own /proc and the runtime preloaded', () => {
    const lib = join(RUNTIME_DIR, 'libvos.so');
    const script = 'echo "pid=$$ procs=$(ls /proc | grep -c "^[0-9]")"; echo "preload=$LD_PRELOAD"; grep -c libvos /proc/self/maps';
    for (const asUser of process.getuid?.() === 0 ? [[], ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']] : [[]]) {
      const cmd = [...asUser, INIT, 'launch', '--runtime', lib, '--', 'sh', '-c', script];
      const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^pid=2 procs=[2-6]$/m); // init, sh, the command substitution, ls, grep: not the host's
      expect(r.stdout).toContain(`preload=${lib}`);
      expect(r.stdout).toMatch(/^[1-9]\d*$/m);
    }
  });

  it('forwards a signal sent to it to the program', async () => {
    const child = spawn(INIT, ['--', 'sh', '-c', 'trap "echo got-term; exit 4" TERM; echo ready; while :; do sleep 0.05; done'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    await waitFor('the program to start', () => out.includes('ready'));
    child.kill('SIGTERM');
    expect(await exited).toBe(4);
    expect(out).toContain('got-term');
  });

  it('gives the program the terminal: Ctrl-C reaches it once, not the init', async () => {
    const term = pty.spawn(INIT, ['--', 'sh', '-c', 'n=0; trap "n=$((n+1))" INT; echo ready; sleep 0.5; sleep 0.5; echo "ints=$n"; exit 3'], {
      cols: 80,
      rows: 24,
    });
    let out = '';
    term.onData((d) => (out += d));
    const exited = new Promise<number>((r) => term.onExit(({ exitCode }) => r(exitCode)));
    await waitFor('the program to start', () => out.includes('ready'));
    term.write('\x03');
    expect(await exited).toBe(3);
    expect(out).toContain('ints=1');
  });

  it('says what to do when started on a terminal whose session it does not lead (a shell that forks it)', async () => {
    // sh runs vos-init as a child here (a command follows it): the terminal stays the shell's,
    // and only its session's leader could give it up for the pod to take.
    const term = pty.spawn('sh', ['-c', `${INIT} -- true; echo "status=$?"`], { cols: 200, rows: 24 });
    let out = '';
    term.onData((d) => (out += d));
    const exited = new Promise<void>((r) => term.onExit(() => r()));
    await exited;
    expect(out).toMatch(/does not lead: start it as the session leader/);
    expect(out).toMatch(/status=[1-9]/);
    // Run as the session leader (exec), the same command works.
    const leader = pty.spawn('sh', ['-c', `exec ${INIT} -- sh -c 'echo ran'`], { cols: 200, rows: 24 });
    let led = '';
    leader.onData((d) => (led += d));
    expect(await new Promise<number>((r) => leader.onExit(({ exitCode }) => r(exitCode)))).toBe(0);
    expect(led).toContain('ran');
  });

  it('reaps orphans re-parented to it', async () => {
    // An orphaned grandchild becomes the init's child (subreaper); once it ends, no zombie stays.
    const script = '(sleep 0.3 &); sleep 0.1; ps -o comm= --ppid $PPID | grep -c "^sleep"; sleep 0.5; ps -o stat= --ppid $PPID | grep -c Z || true';
    const child = spawn(INIT, ['--', 'sh', '-c', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((r) => child.on('exit', r));
    expect(out.trim().split('\n')).toEqual(['1', '0']);
  });
});
