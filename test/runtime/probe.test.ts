/**
 * `vos-init probe`: what this machine lets a pod do, tried for real in a throw-away child. This
 * machine allows user namespaces (the pod tests need them); the hooks make the probe's unshare
 * fail as where they are refused, and the time namespace as on a kernel without them.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RUNTIME_DIR } from '../helpers/runtime-dir.js';
import { UNPRIVILEGED } from '../helpers/agent-process.js';

const INIT = join(RUNTIME_DIR, 'vos-init');

function probe(env: NodeJS.ProcessEnv = {}, asUser = false): Map<string, string> {
  const command = asUser && process.getuid?.() === 0 ? ['setpriv', `--reuid=${UNPRIVILEGED.uid}`, `--regid=${UNPRIVILEGED.gid}`, '--clear-groups', INIT, 'probe'] : [INIT, 'probe'];
  const r = spawnSync(command[0]!, command.slice(1), { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 });
  expect(r.status, r.stderr).toBe(0);
  return new Map(r.stdout.trim().split('\n').map((l) => [l.split(' ')[0]!, l.slice(l.indexOf(' ') + 1)]));
}

describe('vos-init probe', () => {
  it('finds user and time namespaces here, as root and as an unprivileged user', () => {
    for (const asUser of [false, true]) {
      const p = probe({}, asUser);
      expect(p.get('userns')).toBe('ok');
      expect(p.get('timens')).toBe('ok');
      expect(p.get('dirty')).toMatch(/^(ok|no .+)$/);
    }
  });

  it('says why when the unshare fails (test hook), and does not try a time namespace then', () => {
    const p = probe({ VOS_TEST_PROBE_NO_USERNS: '1' });
    expect(p.get('userns')).toMatch(/^no 1 unshare: Operation not permitted/);
    expect(p.get('timens')).toMatch(/^no 0 not tried/);
  });

  it('says when time namespaces are missing', () => {
    const p = probe({ VOS_TEST_NO_TIME_NAMESPACE: '1' });
    expect(p.get('userns')).toBe('ok');
    expect(p.get('timens')).toMatch(/^no 22 cannot make a time namespace/);
  });

  it('refuses arguments', () => {
    expect(spawnSync(INIT, ['probe', 'x']).status).toBe(2);
  });
});
