/**
 * `sudo vos adopt PID`: root's part, and then none. Under Yama's ptrace_scope 1 only a program's
 * parents may trace it, so the user's own agent could not take it over. As root, `vos-init
 * adopt-grant` runs prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY) inside each process of the
 * program's terminal session (all of them the invoking user's), which lets that user's processes
 * trace them; then this process drops to the invoking user for good (SUDO_UID, SUDO_GID, the
 * user's groups and home) before it talks to the user's agent, which adopts the program without
 * privilege. Root's vos-init is the shipped one: an environment variable does not choose what
 * root runs.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { VosError } from '../api/errors.js';
import { packageRoot, runtimeDirFor } from '../base/package-paths.js';

interface Invoker {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** Who ran sudo, from SUDO_UID and the password database; null when not under sudo as root. */
export function sudoInvoker(env: NodeJS.ProcessEnv = process.env): Invoker | null {
  if (process.getuid?.() !== 0 || !env.SUDO_UID || !/^\d+$/.test(env.SUDO_UID) || env.SUDO_UID === '0') return null;
  const uid = Number(env.SUDO_UID);
  let entry: string;
  try {
    entry = execFileSync('getent', ['passwd', String(uid)], { encoding: 'utf8' }).trim();
  } catch {
    throw new VosError('invalid_params', `SUDO_UID ${uid} names no user of this machine`);
  }
  const [name, , , gid, , home] = entry.split(':');
  if (!name || !home || !gid || !/^\d+$/.test(gid)) throw new VosError('invalid_params', `the password entry of uid ${uid} cannot be read`);
  const sudoGid = env.SUDO_GID && /^\d+$/.test(env.SUDO_GID) ? Number(env.SUDO_GID) : Number(gid);
  return { name, uid, gid: sudoGid, home };
}

/** Root's part (the ptrace exceptions), then this process becomes the invoker for good. */
export function grantThenDrop(pid: number, who: Invoker): void {
  const init = join(runtimeDirFor(packageRoot()), 'vos-init');
  const r = spawnSync(init, ['adopt-grant', '--pid', String(pid), '--uid', String(who.uid)], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) {
    throw new VosError('unsupported', `cannot adopt process ${pid}: ${(r.stderr || r.error?.message || 'vos-init adopt-grant failed').trim()}`);
  }
  const groups = execFileSync('id', ['-G', who.name], { encoding: 'utf8' }).trim().split(/\s+/).filter((g) => /^\d+$/.test(g)).map(Number);
  process.setgroups!([...new Set([who.gid, ...groups])]);
  process.setgid!(who.gid);
  process.setuid!(who.uid); // real, effective and saved: there is no way back
  if (process.getuid!() !== who.uid || process.geteuid!() !== who.uid || process.getegid!() !== who.gid) {
    throw new VosError('internal', 'could not give up root');
  }
  process.env.HOME = who.home;
  process.env.USER = process.env.LOGNAME = who.name;
}
