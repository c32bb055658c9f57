#!/usr/bin/env node
// The `vos` command. The code lives in src-main/cli and is built to out/node by `npm run build`
// (npm install runs it).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// The app runs the agent with Electron's binary as Node (ELECTRON_RUN_AS_NODE=1); that is done
// now, and must not reach the programs of sessions (an Electron app started there would run as Node).
delete process.env.ELECTRON_RUN_AS_NODE;

const entry = new URL('../out/node/src-main/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('vos: not built yet; run `npm install` (or `npm run build`) in the vOS checkout\n');
  process.exit(1);
}
const { main, flushStdio } = await import(entry.href);
const status = await main(process.argv.slice(2));
// Exiting while a handle lingers is fine, but not before a pipe has taken all of the output.
await flushStdio();
process.exit(status);
