/**
 * `vos doctor` on this machine and on machines made to lack things: namespaces refused (the
 * probe's test hook), no time namespaces (the runtime's hook), no network for mDNS, a state
 * directory of the wrong mode or owner, the peer port taken. Every run is in a network
 * namespace of its own (unshare -n), so that its mDNS query never reaches the LAN: there, lo up
 * with multicast is a network on which mDNS works. Needs root; skipped otherwise.
 */
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createServer, type AddressInfo } from 'node:net';
import { peerPortCheck, type DoctorCheck } from '../../src-main/cli/doctor-checks.js';
import { ROOT, tempHome, UNPRIVILEGED } from '../helpers/agent-process.js';

const VOS = join(ROOT, 'bin', 'vos.js');

function skipReason(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (a network namespace per run)';
  if (spawnSync('unshare', ['-n', 'true']).status !== 0) return 'unshare -n does not work here';
  if (spawnSync('ip', ['-V']).status !== 0) return 'needs ip (iproute2)';
  return null;
}
const unavailable = skipReason();
if (unavailable) console.log(`test/cli/doctor.test.ts skipped: ${unavailable}`);

interface Run {
  code: number;
  stdout: string;
  checks: DoctorCheck[];
}

/** Runs `vos doctor` (and `--json`) in a new network namespace; `network`: lo up with multicast. */
async function doctor(home: string, options: { env?: NodeJS.ProcessEnv; network?: boolean; before?: string } = {}): Promise<Run> {
  const net = options.network === false ? '' : 'ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo && ';
  const run = (json: boolean): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      const script = `${net}${options.before ?? ''}exec "$0" "$1" doctor ${json ? '--json' : ''}`;
      execFile('unshare', ['-n', 'sh', '-c', script, process.execPath, VOS], { env: { ...process.env, ...options.env, VOS_HOME: home }, timeout: 60_000 }, (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
      );
    });
  const [text, json] = await Promise.all([run(false), run(true)]);
  expect(json.code, json.stderr).toBe(text.code);
  return { code: text.code, stdout: text.stdout, checks: JSON.parse(json.stdout) as DoctorCheck[] };
}

const check = (r: Run, name: RegExp): DoctorCheck => {
  const c = r.checks.find((x) => name.test(x.name));
  expect(c, `a check named ${name}`).toBeDefined();
  return c!;
};

const homes: string[] = [];
function home(): string {
  const h = tempHome();
  homes.push(h);
  return h;
}
afterAll(() => {
  for (const h of homes) spawnSync('rm', ['-rf', h]);
});

describe.skipIf(unavailable !== null)('vos doctor', () => {
  it('finds everything working here, and says so', async () => {
    const r = await doctor(home());
    expect(r.code, r.stdout).toBe(0);
    expect(r.checks.map((c) => c.name)).toEqual([
      'the vOS runtime',
      'namespaces (user, pid, mount, IPC)',
      'time namespaces',
      'userfaultfd write-protection and PAGEMAP_SCAN',
      'mDNS (UDP 5353, group 224.0.0.251)',
      'the peer port (TCP 47470)',
      'the state directory',
    ]);
    for (const name of [/^the vOS runtime/, /^namespaces/, /^time namespaces/, /^mDNS/, /^the peer port/, /^the state directory/]) {
      expect(check(r, name).ok, JSON.stringify(check(r, name))).toBe(true);
    }
    expect(r.stdout).toMatch(/^ok {7}namespaces \(user, pid, mount, IPC\): sessions run in pods/m);
    expect(r.stdout).toMatch(/Everything (essential )?works\.\n$/);
  });

  it('fails when namespaces are refused, with the fix', async () => {
    const r = await doctor(home(), { env: { VOS_TEST_PROBE_NO_USERNS: '1' } });
    expect(r.code).toBe(1);
    const ns = check(r, /^namespaces/);
    expect(ns.ok).toBe(false);
    expect(ns.essential).toBe(true);
    expect(ns.detail).toContain('cannot be checkpointed or moved');
    expect(ns.fix).toBeTruthy();
    expect(r.stdout).toMatch(/^MISSING  namespaces .*\n {9}fix: /m);
    expect(r.stdout).toMatch(/^Missing what vOS needs: namespaces \(user, pid, mount, IPC\)\.$/m);
  });

  it('says what a missing time namespace or mDNS costs, without failing', async () => {
    const r = await doctor(home(), { env: { VOS_TEST_NO_TIME_NAMESPACE: '1' }, network: false });
    expect(r.code, r.stdout).toBe(0);
    const time = check(r, /^time namespaces/);
    expect([time.ok, time.essential]).toEqual([false, false]);
    expect(time.fix).toBeTruthy();
    const mdns = check(r, /^mDNS/);
    expect(mdns.ok).toBe(false);
    expect(mdns.detail).toContain('not found by themselves');
    expect(mdns.fix).toContain('vos peer add');
    expect(r.stdout).toMatch(/Everything essential works\.\n$/);
  });

  it('checks the state directory: its mode, and its owner', async () => {
    const open = home();
    chmodSync(open, 0o755);
    const r = await doctor(open);
    const dir = check(r, /^the state directory/);
    expect([dir.ok, dir.essential, r.code]).toEqual([false, false, 0]);
    expect(dir.fix).toBe(`chmod 700 ${open}`);

    const theirs = home();
    mkdirSync(join(theirs, 'x'));
    chownSync(theirs, UNPRIVILEGED.uid, UNPRIVILEGED.gid);
    chmodSync(theirs, 0o700);
    const s = await doctor(theirs);
    expect(s.code).toBe(1);
    expect(check(s, /^the state directory/).detail).toContain(`belongs to uid ${UNPRIVILEGED.uid}`);
  });

  it('says when the peer port is taken', async () => {
    // Something else listens on the port (any port: the check is the same for 47470).
    const other = createServer();
    await new Promise<void>((resolve) => other.listen(0, '0.0.0.0', resolve));
    const taken = (other.address() as AddressInfo).port;
    try {
      const port = await peerPortCheck(null, taken);
      expect(port.ok).toBe(false);
      expect(port.detail).toContain('another program');
      expect(port.fix).toContain('--listen');
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
    expect((await peerPortCheck(null, taken)).ok).toBe(true);
  });
});
