/**
 * What this machine lets vOS do, asked of the runtime (`vos-init probe`: a throw-away child makes
 * the namespaces a pod needs, as launch does) and explained with the machine's settings: why user
 * namespaces are refused (Ubuntu's AppArmor rule, Debian's older switch, a zero namespace limit, a
 * container without them) and what to do about it.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PodSupport } from '../../api/protocol.js';

export interface Capability {
  ok: boolean;
  /** Why not, in words (null when ok). */
  reason: string | null;
  /** What to do about it (null when ok). */
  fix: string | null;
}

export interface HostProbe {
  /** User, pid, mount and IPC namespaces with a pod init mounting its /proc: a pod. */
  pods: Capability;
  /** Time namespaces (a restore keeps the program's clocks). */
  timeNamespaces: Capability;
  /** userfaultfd asynchronous write-protection and PAGEMAP_SCAN (live moves, incremental images). */
  dirtyTracking: Capability;
}

/** Where the machine's settings are read (the tests point it at a directory of their own). */
export interface SettingsRoot {
  /** /proc */
  proc: string;
  /** / (for a container's marker files) */
  root: string;
}

const SYSTEM: SettingsRoot = { proc: '/proc', root: '/' };

const OK: Capability = { ok: true, reason: null, fix: null };

/** Runs `init probe` and explains what is missing. Never throws: a probe that fails is an answer. */
export function probeHost(init: string, settings: SettingsRoot = SYSTEM): Promise<HostProbe> {
  return new Promise((resolve) => {
    execFile(init, ['probe'], { timeout: 20_000 }, (error, stdout, stderr) => {
      if (error) {
        const why = `the runtime's probe failed: ${stderr.trim() || error.message}`;
        const fix = 'rebuild the runtime (npm run build) and see the agent log';
        const failed: Capability = { ok: false, reason: why, fix };
        resolve({ pods: failed, timeNamespaces: failed, dirtyTracking: failed });
        return;
      }
      resolve(parseProbe(stdout, settings));
    });
  });
}

/** The answer of `vos-init probe` (its lines), explained. */
export function parseProbe(text: string, settings: SettingsRoot = SYSTEM): HostProbe {
  const lines = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^(\w+) (.*)$/.exec(line);
    if (m) lines.set(m[1]!, m[2]!);
  }
  const missing = (what: string): Capability => ({ ok: false, reason: `the runtime's probe did not say (${what})`, fix: 'rebuild the runtime (npm run build)' });
  const userns = lines.get('userns');
  let pods: Capability;
  if (userns === undefined) pods = missing('userns');
  else if (userns === 'ok') pods = OK;
  else {
    const { errno, why } = errnoAndWhy(userns);
    pods = explainNoNamespaces(errno, why, settings);
  }
  const timens = lines.get('timens');
  let timeNamespaces: Capability;
  if (timens === undefined) timeNamespaces = missing('timens');
  else if (timens === 'ok') timeNamespaces = OK;
  else if (!pods.ok) timeNamespaces = { ok: false, reason: 'not tried: no user namespace', fix: pods.fix };
  else {
    timeNamespaces = {
      ok: false,
      reason: `this kernel cannot make time namespaces (${errnoAndWhy(timens).why}): a restored program's monotonic clocks jump`,
      fix: 'a kernel of version 5.6 or later built with CONFIG_TIME_NS',
    };
  }
  const dirty = lines.get('dirty');
  let dirtyTracking: Capability;
  if (dirty === undefined) dirtyTracking = missing('dirty');
  else if (dirty === 'ok') dirtyTracking = OK;
  else {
    dirtyTracking = {
      ok: false,
      reason: `${dirty.replace(/^no /, '')}: moves stop the program for the whole copy, and every image is whole`,
      fix: 'a kernel of version 6.7 or later (userfaultfd asynchronous write-protection and PAGEMAP_SCAN); where vm.unprivileged_userfaultfd matters: sudo sysctl -w vm.unprivileged_userfaultfd=1',
    };
  }
  return { pods, timeNamespaces, dirtyTracking };
}

/** "no ERRNO WHY" → its parts. */
function errnoAndWhy(answer: string): { errno: number; why: string } {
  const m = /^no (\d+) (.*)$/.exec(answer);
  return m ? { errno: Number(m[1]), why: m[2]! } : { errno: 0, why: answer.replace(/^no /, '') };
}

function readSetting(settings: SettingsRoot, path: string): string | null {
  try {
    return readFileSync(join(settings.proc, path), 'utf8').trim();
  } catch {
    return null;
  }
}

const KEEP = (setting: string): string => `(to keep it after a reboot: echo '${setting}' | sudo tee /etc/sysctl.d/60-vos.conf)`;

/** Why this user may not make the namespaces a pod needs, from the machine's settings, and the fix. */
export function explainNoNamespaces(errno: number, why: string, settings: SettingsRoot = SYSTEM): Capability {
  const ENOSPC = 28;
  if (readSetting(settings, 'sys/kernel/apparmor_restrict_unprivileged_userns') === '1') {
    return {
      ok: false,
      reason: `AppArmor restricts unprivileged user namespaces on this system (kernel.apparmor_restrict_unprivileged_userns = 1, Ubuntu 23.10 and later; ${why})`,
      fix:
        "install vOS from its .deb package, which adds an AppArmor profile letting vos-init make them (as Chromium's package does); " +
        'or allow them for every program: sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 ' +
        KEEP('kernel.apparmor_restrict_unprivileged_userns=0'),
    };
  }
  if (readSetting(settings, 'sys/kernel/unprivileged_userns_clone') === '0') {
    return {
      ok: false,
      reason: `unprivileged user namespaces are turned off on this system (kernel.unprivileged_userns_clone = 0; ${why})`,
      fix: `sudo sysctl -w kernel.unprivileged_userns_clone=1 ${KEEP('kernel.unprivileged_userns_clone=1')}`,
    };
  }
  if (readSetting(settings, 'sys/user/max_user_namespaces') === '0') {
    return {
      ok: false,
      reason: `user namespaces are turned off on this system (user.max_user_namespaces = 0; ${why})`,
      fix: `sudo sysctl -w user.max_user_namespaces=15000 ${KEEP('user.max_user_namespaces=15000')}`,
    };
  }
  if (errno === ENOSPC) {
    return {
      ok: false,
      reason: `this user has as many user namespaces as it may have (user.max_user_namespaces; ${why})`,
      fix: 'end programs that hold many (containers, sandboxes), or raise the limit: sudo sysctl -w user.max_user_namespaces=15000',
    };
  }
  if (inContainer(settings)) {
    return {
      ok: false,
      reason: `this runs in a container that does not allow user namespaces (${why})`,
      fix:
        'start the container with them allowed (Docker or Podman: --security-opt seccomp=unconfined --security-opt apparmor=unconfined; ' +
        'LXD: security.nesting=true), or run vOS on the host',
    };
  }
  return {
    ok: false,
    reason: `this system does not let this user make namespaces (${why})`,
    fix: 'a kernel with user namespaces (CONFIG_USER_NS) that lets unprivileged users make them; a security module or seccomp filter may refuse them',
  };
}

function inContainer(settings: SettingsRoot): boolean {
  if (existsSync(join(settings.root, '.dockerenv')) || existsSync(join(settings.root, 'run/.containerenv'))) return true;
  const cgroup = readSetting(settings, '1/cgroup') ?? '';
  return /docker|kubepods|containerd|lxc|libpod/.test(cgroup);
}

/** What the API says of pods (agent.info), from a probe. */
export function podSupportOf(probe: HostProbe | null): PodSupport {
  if (!probe) return { ok: false, reason: 'the vOS runtime is not built', fix: 'npm run build (in the vOS checkout)', timeNamespaces: false };
  return { ok: probe.pods.ok, reason: probe.pods.reason, fix: probe.pods.fix, timeNamespaces: probe.timeNamespaces.ok };
}
