#!/usr/bin/env node
// Part of `npm install`: fetches Electron's binary when it is missing and the network allows.
// npm itself is told not to run Electron's own install script (package.json "allowScripts"),
// because where the download is impossible that script fails the whole install. Here a failed
// download is only a note: `npm start` then says Electron is unavailable and serves the web UI.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

function electronDir() {
  try {
    return dirname(require.resolve('electron/package.json'));
  } catch {
    return null;
  }
}

const dir = electronDir();
if (!dir) process.exit(0); // production install without devDependencies: nothing to do
const pathFile = join(dir, 'path.txt');
const present = existsSync(pathFile) && existsSync(join(dir, 'dist', readFileSync(pathFile, 'utf8').trim()));
if (present) process.exit(0);
if (process.env.ELECTRON_SKIP_BINARY_DOWNLOAD) {
  console.log('vos: ELECTRON_SKIP_BINARY_DOWNLOAD is set: not fetching Electron; `npm start` will serve the web UI.');
  process.exit(0);
}
const result = spawnSync(process.execPath, [join(dir, 'install.js')], { encoding: 'utf8', timeout: 600_000 });
if (result.status === 0) {
  console.log('vos: fetched the Electron binary.');
} else {
  const lines = `${result.stderr ?? ''}${result.error ? String(result.error) : ''}`.split('\n');
  const reason = lines.find((l) => /error/i.test(l))?.trim() ?? `exit status ${result.status}`;
  console.log(`vos: could not fetch Electron's binary (${reason}).`);
  console.log('vos: everything else is installed; `npm start` will serve the web UI instead of opening the app.');
}
