/**
 * The native runtime as the agent sees it: where vos-init and libvos.so are, and checking an
 * image with it (checkpoints: checkpoint-helper.ts).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { VosError } from '../../api/errors.js';
import { packageRoot, runtimeDirFor } from '../../base/package-paths.js';

export interface RuntimeFiles {
  init: string;
  library: string;
}

let cached: RuntimeFiles | null | undefined; // located once: the install does not move

/** The built runtime, or null when it is missing (sessions then run without a pod). */
export function runtimeFiles(): RuntimeFiles | null {
  if (cached !== undefined) return cached;
  // VOS_RUNTIME_DIR: another build of the runtime (the tests' sanitizer build, a developer's).
  // Safe in shipped builds: it is the agent's own environment, set only by the user who starts
  // it (no peer or client can), and what it names runs with that user's rights, as anything the
  // user starts would; a directory without it counts as no runtime (sessions run without a pod).
  const dir = process.env.VOS_RUNTIME_DIR ?? runtimeDirFor(packageRoot());
  const files = { init: join(dir, 'vos-init'), library: join(dir, 'libvos.so') };
  cached = existsSync(files.init) && existsSync(files.library) ? files : null;
  return cached;
}

/** Checks an image's integrity with vos-init; throws `bad_image` with its reason. */
export function verifyImage(init: string, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(init, ['verify', path], { timeout: 600_000 }, (error, _stdout, stderr) => {
      if (!error) resolve();
      else reject(new VosError('bad_image', stderr.trim() || `cannot verify ${path}`, { path }));
    });
  });
}
