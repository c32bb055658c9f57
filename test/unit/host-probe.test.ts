/** Why a machine refuses user namespaces, from its settings (a directory standing for /proc). */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { explainNoNamespaces, parseProbe, podSupportOf, type SettingsRoot } from '../../src-main/agent/runtime/host-probe.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A fake machine: files under proc/ and root/. */
function machine(files: Record<string, string>): SettingsRoot {
  const d = mkdtempSync(join(tmpdir(), 'vos-probe-'));
  dirs.push(d);
  for (const [path, text] of Object.entries(files)) {
    const file = join(d, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
  }
  mkdirSync(join(d, 'proc'), { recursive: true });
  mkdirSync(join(d, 'root'), { recursive: true });
  return { proc: join(d, 'proc'), root: join(d, 'root') };
}

const EPERM = 1;

describe('explainNoNamespaces', () => {
  it("names Ubuntu's AppArmor rule and the fix", () => {
    const c = explainNoNamespaces(EPERM, 'unshare: Operation not permitted', machine({ 'proc/sys/kernel/apparmor_restrict_unprivileged_userns': '1\n' }));
    expect(c.ok).toBe(false);
    expect(c.reason).toContain('apparmor_restrict_unprivileged_userns = 1');
    expect(c.fix).toContain('.deb');
    expect(c.fix).toContain('sysctl -w kernel.apparmor_restrict_unprivileged_userns=0');
  });

  it("names Debian's switch", () => {
    const c = explainNoNamespaces(EPERM, 'x', machine({ 'proc/sys/kernel/apparmor_restrict_unprivileged_userns': '0\n', 'proc/sys/kernel/unprivileged_userns_clone': '0\n' }));
    expect(c.reason).toContain('unprivileged_userns_clone = 0');
    expect(c.fix).toContain('kernel.unprivileged_userns_clone=1');
  });

  it('names a zero namespace limit', () => {
    const c = explainNoNamespaces(28, 'x', machine({ 'proc/sys/user/max_user_namespaces': '0\n' }));
    expect(c.reason).toContain('max_user_namespaces = 0');
    expect(c.fix).toContain('user.max_user_namespaces=');
  });

  it('names a container', () => {
    expect(explainNoNamespaces(EPERM, 'x', machine({ 'root/.dockerenv': '' })).reason).toContain('container');
    expect(explainNoNamespaces(EPERM, 'x', machine({ 'proc/1/cgroup': '0::/kubepods/burstable/pod1\n' })).reason).toContain('container');
  });

  it('says what it can otherwise', () => {
    const c = explainNoNamespaces(EPERM, 'unshare: Operation not permitted', machine({ 'proc/sys/user/max_user_namespaces': '1000\n' }));
    expect(c.reason).toContain('unshare: Operation not permitted');
    expect(c.reason).not.toContain('container');
    expect(c.fix).toBeTruthy();
  });
});

describe('parseProbe', () => {
  it('reads every answer', () => {
    const p = parseProbe('userns ok\ntimens no 22 cannot make a time namespace: Invalid argument\ndirty no this kernel cannot list written pages (PAGEMAP_SCAN: Invalid argument)\n', machine({}));
    expect(p.pods).toEqual({ ok: true, reason: null, fix: null });
    expect(p.timeNamespaces.ok).toBe(false);
    expect(p.timeNamespaces.reason).toContain('Invalid argument');
    expect(p.dirtyTracking.ok).toBe(false);
    expect(p.dirtyTracking.reason).toContain('PAGEMAP_SCAN');
    expect(podSupportOf(p)).toEqual({ ok: true, reason: null, fix: null, timeNamespaces: false });
  });

  it('explains a refused user namespace, and a missing line is not taken for yes', () => {
    const p = parseProbe('userns no 1 unshare: Operation not permitted\ntimens no 0 not tried\n', machine({ 'proc/sys/kernel/apparmor_restrict_unprivileged_userns': '1' }));
    expect(p.pods.reason).toContain('AppArmor');
    expect(p.timeNamespaces.ok).toBe(false);
    expect(p.dirtyTracking.ok).toBe(false);
    expect(podSupportOf(null).ok).toBe(false);
  });
});
