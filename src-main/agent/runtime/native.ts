/**
 * The native runtime as the agent sees it: where vos-init and libvos.so are, and the commands
 * that run next to a session (verify an image, ask a pod for a checkpoint).
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { VosError } from '../../api/errors.js';
import { packageRoot } from '../../base/package-paths.js';

export interface RuntimeFiles {
  init: string;
  library: string;
}

let cached: RuntimeFiles | null | undefined; // located once: the install does not move

/** The built runtime, or null when it is missing (sessions then run without a pod). */
export function runtimeFiles(): RuntimeFiles | null {
  if (cached !== undefined) return cached;
  const dir = process.env.VOS_RUNTIME_DIR ?? join(packageRoot(), 'out', 'runtime');
  const files = { init: join(dir, 'vos-init'), library: join(dir, 'libvos.so') };
  cached = existsSync(files.init) && existsSync(files.library) ? files : null;
  return cached;
}

/** Checks an image's integrity with vos-init; throws `bad_image` with its reason. */
export function verifyImage(init: string, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(init, ['verify', path], { timeout: 600_000 }, (error, _stdout, stderr) => {
      if (!error) resolve();
      else reject(new VosError('bad_image', stderr.trim() || `cannot verify ${path}`));
    });
  });
}

export interface CheckpointReply {
  fields: Record<string, string>;
}

/**
 * Runs `vos-init checkpoint` with the image file as its fd 3. When the pod reports that it is
 * frozen, `onFrozen` runs; the pod stays frozen until the promise it returns settles (the
 * screen is saved by then). Resolves with the pod's final "ok ..." fields.
 */
export function runCheckpointHelper(
  init: string,
  args: string[],
  imageFd: number,
  onFrozen: () => Promise<unknown>,
): Promise<CheckpointReply> {
  return new Promise((resolve, reject) => {
    const child = spawn(init, ['checkpoint', '--wait-screen', ...args], { stdio: ['pipe', 'pipe', 'pipe', imageFd] });
    child.stdin!.on('error', () => {
      /* the helper is gone; its exit says why */
    });
    let last = '';
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line === 'frozen') {
        void onFrozen()
          .catch(() => undefined)
          .then(() => child.stdin!.end('screen-saved\n'));
      } else {
        last = line;
      }
    });
    child.on('error', (err) => reject(new VosError('checkpoint_failed', `cannot run ${init}: ${err.message}`)));
    child.on('close', () => {
      if (last.startsWith('ok')) {
        const fields: Record<string, string> = {};
        for (const part of last.slice(2).trim().split(' ')) {
          const eq = part.indexOf('=');
          if (eq > 0) fields[part.slice(0, eq)] = part.slice(eq + 1);
        }
        resolve({ fields });
      } else {
        const why = last.startsWith('error ') ? last.slice(6) : last || stderr.trim() || 'the checkpoint helper failed';
        reject(new VosError('checkpoint_failed', why));
      }
    });
  });
}
