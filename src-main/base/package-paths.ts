/** Where the installed project's own files are, whichever build (tsc output or Electron bundle) runs. */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | null = null; // cached: the package root does not move while we run

export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'vos') return (root = dir);
      } catch {
        /* not ours; keep looking */
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the vos package root above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
}

/** The built renderer (index.html and assets), served in web mode. */
export function rendererDir(): string {
  return join(packageRoot(), 'out', 'renderer');
}

/**
 * The built runtime (vos-init, libvos.so): out/runtime of a checkout; in a packaged app, where
 * the package root is its app.asar, resources/runtime beside it (electron-builder.yml's
 * extraResources: what is executed cannot be in the archive).
 */
export function runtimeDirFor(root: string): string {
  return basename(root) === 'app.asar' ? join(dirname(root), 'runtime') : join(root, 'out', 'runtime');
}

/** The CLI entry point, for starting a background agent. */
export function cliEntry(): string {
  return join(packageRoot(), 'bin', 'vos.js');
}
