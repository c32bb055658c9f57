/**
 * A terminal that reports a size of 0 x 0 (a serial console, some CI runners never set one):
 * `vos run` and `vos attach` in it give the session 80 x 24 instead of failing. Real ptys whose
 * size is set to 0 x 0 with the TIOCSWINSZ ioctl (stty), a real agent.
 */
import pty from '@lydell/node-pty';
import { afterEach, describe, expect, it } from 'vitest';
import type { SessionInfo } from '../../src-main/api/protocol.js';
import { startDaemon, vos, waitFor, VOS, type DaemonHandle } from '../helpers/agent-process.js';

const daemons: DaemonHandle[] = [];
const cleanups: Array<() => void> = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) c();
  await Promise.all(daemons.splice(0).map((d) => d.stop()));
});

/** `vos ARGS` on a pty that says it is 0 x 0; its output so far, and its exit code. */
function onZeroSizedTerminal(home: string, args: string[]): { seen: () => string; write: (s: string) => void; exited: Promise<number> } {
  const quoted = args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  // stty sets the size with TIOCSWINSZ on the pty itself; the check shows it took.
  const script = `stty rows 0 cols 0 && echo "size: $(stty size)" && exec '${process.execPath}' '${VOS}' ${quoted}`;
  const term = pty.spawn('/bin/sh', ['-c', script], { cols: 80, rows: 24, env: { ...process.env, VOS_HOME: home } as Record<string, string> });
  let seen = '';
  term.onData((d) => (seen += d));
  const exited = new Promise<number>((resolve) => term.onExit(({ exitCode }) => resolve(exitCode)));
  cleanups.push(() => term.kill());
  return { seen: () => seen, write: (s) => term.write(s), exited };
}

async function sessions(home: string): Promise<SessionInfo[]> {
  return JSON.parse((await vos(home, ['ls', '--json'])).stdout) as SessionInfo[];
}

describe('a terminal of 0 x 0', () => {
  it('vos run gives the session 80 x 24', async () => {
    const d = await startDaemon();
    daemons.push(d);
    const t = onZeroSizedTerminal(d.home, ['run', '--', 'sh', '-c', 'echo "inside: $(stty size)"; read x; exit 3']);
    await waitFor('the program to show its size', () => /inside: \d+ \d+/.test(t.seen()), 20_000);
    expect(t.seen()).toContain('size: 0 0');
    expect(t.seen()).toContain('inside: 24 80');
    expect(t.seen()).not.toContain('whole number');
    t.write('\r');
    expect(await t.exited).toBe(3);
  });

  it('vos attach takes 80 x 24 for it', async () => {
    const d = await startDaemon();
    daemons.push(d);
    const id = (await vos(d.home, ['run', '-d', '--', 'sh', '-c', 'read x; exit 4'])).stdout.trim();
    expect((await vos(d.home, ['resize', id, '100', '30'])).code).toBe(0);
    const t = onZeroSizedTerminal(d.home, ['attach', id]);
    await waitFor('the attach to take', async () => (await sessions(d.home))[0]!.viewers === 1);
    expect((await sessions(d.home))[0]).toMatchObject({ cols: 80, rows: 24 });
    t.write('\r');
    expect(await t.exited).toBe(4);
    expect(t.seen()).not.toContain('whole number');
  });
});
