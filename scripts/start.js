#!/usr/bin/env node
// `npm start`: the Electron app where Electron can run; otherwise says why and starts the headless
// agent with its web UI (or, when an agent already runs, turns its web UI on), printing the URL.
// Ctrl-C stops that agent; the sessions' programs keep running under their terminal hosts.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const vos = fileURLToPath(new URL('../bin/vos.js', import.meta.url));
const require = createRequire(import.meta.url);

function electronBinary() {
  let path;
  try {
    path = require('electron'); // the package's index returns the binary's path, or throws when it was never downloaded
  } catch (err) {
    return { missing: `its binary is not installed (${String(err.message ?? err).split('\n')[0]})` };
  }
  if (typeof path !== 'string' || !existsSync(path)) return { missing: 'its binary is not installed' };
  if (!process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) return { missing: 'there is no display (DISPLAY and WAYLAND_DISPLAY are unset)' };
  return { path };
}

// `ownGroup`: the child gets a process group of its own, so Ctrl-C at the terminal reaches it
// once, through us, not twice (the terminal signals its whole foreground group; a second SIGINT
// could cut the agent's orderly stop short).
function run(cmd, args, onStopped, ownGroup = false) {
  const child = spawn(cmd, args, { cwd: root, stdio: 'inherit', detached: ownGroup });
  let stopping = false;
  child.on('exit', (code, signal) => {
    if (stopping) onStopped?.();
    process.exit(signal ? 1 : (code ?? 0));
  });
  // SIGHUP too: in a session of its own, the child no longer hears its terminal close.
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(s, () => {
      stopping = true;
      child.kill(s);
    });
  }
}

function sessionsGoOn() {
  console.log('\nThe vOS agent has stopped. Sessions were not ended: their programs keep running.');
  console.log('Start it again (npm start, or npx vos daemon) and see them with npx vos ls; end one with npx vos kill ID.');
}

const electron = electronBinary();
if (electron.path) {
  run(electron.path, [root]);
} else {
  console.log(`Electron is not available here: ${electron.missing}.`);
  console.log('Starting the headless vOS agent with its web UI instead; open the address below in a browser.');
  const status = spawn(process.execPath, [vos, 'status'], { stdio: 'ignore' });
  status.on('exit', (code) => {
    if (code === 0) {
      console.log('(an agent is already running for this user; turning its web UI on)');
      run(process.execPath, [vos, 'web']);
    } else {
      run(process.execPath, [vos, 'daemon', '--web'], sessionsGoOn, true);
    }
  });
}
