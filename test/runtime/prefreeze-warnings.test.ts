/**
 * What a restore will not carry is said before the pod is frozen (issue 11): `vos-init
 * checkpoint` prints a "prewarn" line for each socket to outside the pod before its "frozen"
 * line (and before any live copying), from a read-only scan of the running pod's /proc; the
 * exact "warn" lines made while frozen follow and say the same here. Sockets that are carried
 * (a listener, a socket pair inside the pod) are not named. As root and as an unprivileged user.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import pty from '@lydell/node-pty';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UNPRIVILEGED, waitFor } from '../helpers/agent-process.js';
import { RUNTIME_DIR } from '../helpers/runtime-dir.js';

const INIT = join(RUNTIME_DIR, 'vos-init');
const LIB = join(RUNTIME_DIR, 'libvos.so');
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const users: ('root' | 'nobody')[] = process.getuid?.() === 0 ? ['root', 'nobody'] : ['root'];

describe.each(users)('warnings before the freeze (as %s)', (user) => {
  let dir: string;
  let tcp: Server;
  let unix: Server;
  let port: number;
  const unixPath = (): string => join(dir, 'outside.sock');

  beforeAll(async () => {
    dir = mkdtempSync('/tmp/vos-test-prefreeze-');
    chmodSync(dir, 0o777);
    tcp = createServer((s) => s.write('hi\n'));
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', () => r()));
    port = (tcp.address() as AddressInfo).port;
    unix = createServer((s) => s.write('hi\n'));
    await new Promise<void>((r) => unix.listen(unixPath(), () => r()));
    chmodSync(unixPath(), 0o777);
  });
  afterAll(() => {
    tcp?.close();
    unix?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const asUser = (): string[] =>
    user === 'nobody' ? ['setpriv', `--reuid=${UNPRIVILEGED.uid}`, `--regid=${UNPRIVILEGED.gid}`, '--clear-groups'] : [];

  it('names each socket to outside the pod before "frozen", and not the ones it carries', async () => {
    const pod = join(dir, `${user}.sock`);
    const code = [
      'import socket',
      `t = socket.create_connection(("127.0.0.1", ${port}))`,
      'u = socket.socket(socket.AF_UNIX)',
      `u.connect(${JSON.stringify(unixPath())})`,
      'a, b = socket.socketpair()',
      'l = socket.socket()',
      'l.bind(("127.0.0.1", 0))',
      'l.listen(4)',
      't.recv(3); u.recv(3)',
      'print("ready", flush=True)',
      'input()',
    ].join('\n');
    const term = pty.spawn(asUser()[0] ?? INIT, [...asUser().slice(1), ...(asUser().length ? [INIT] : []), 'launch', '--control', pod, '--runtime', LIB, '--', PYTHON, '-c', code], {
      cols: 80,
      rows: 24,
      env: process.env as Record<string, string>,
    });
    let out = '';
    term.onData((d) => (out += d));
    try {
      await waitFor('the program to connect', () => /ready/.test(out));
      const cp = spawnSync('sh', ['-c', `exec "$@" 3>${join(dir, `${user}.img`)}`, 'sh', ...asUser(), INIT, 'checkpoint', '--control', pod], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(cp.status, cp.stdout + cp.stderr).toBe(0);
      const lines = cp.stdout.split('\n');
      const frozen = lines.indexOf('frozen');
      expect(frozen, cp.stdout).toBeGreaterThan(0);
      const said = (kind: string): string[] => lines.flatMap((l, i) => (l.startsWith(`${kind} `) ? [`${i < frozen ? 'before' : 'after'} ${l.slice(kind.length + 1)}`] : []));
      const who = 'process 2 (python3)';
      const expected = [
        `${who}: a TCP connection to 127.0.0.1:${port} will be restored disconnected`,
        `${who}: a Unix socket to ${unixPath()} will be restored disconnected`,
      ];
      // Said while the program ran, before the freeze...
      expect(said('prewarn').sort()).toEqual(expected.map((w) => `before ${w}`).sort());
      // ...and, exact, while frozen: the same here (nothing changed in between).
      expect(said('warn').sort()).toEqual(expected.map((w) => `after ${w}`).sort());
    } finally {
      term.kill('SIGKILL');
    }
  }, 90_000);
});
