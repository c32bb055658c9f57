/**
 * What a user's pipes and disk see (security review, issue 15): `vos` output through a pipe to a
 * slow reader arrives whole, and a program printing random bytes does not fill the background
 * agent's log.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { endHosts, startDaemon, tempHome, vos, waitFor, VOS, type DaemonHandle } from '../helpers/agent-process.js';

const daemons: DaemonHandle[] = [];
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await Promise.all(daemons.splice(0).map((d) => d.stop()));
});

function sh(script: string, env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('sh', ['-c', script], { env: { ...process.env, ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

function stopBackgroundAgent(home: string): () => Promise<void> {
  return async () => {
    const { pid } = JSON.parse(readFileSync(join(home, 'agent.pid'), 'utf8')) as { pid: number };
    process.kill(pid, 'SIGTERM');
    await waitFor('the background agent to stop', () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    });
    await endHosts(home); // the agent leaves its sessions running: they go with the home
    rmSync(home, { recursive: true, force: true });
  };
}

describe('output through pipes', () => {
  it('gives a slow reader all of a large output before exiting', async () => {
    const d = await startDaemon();
    daemons.push(d);
    const client = await d.connect();
    // A screen of 300 rows of 999 characters: some 300 KB of `vos screen --json`, far more than a pipe holds.
    const session = await client.request('session.create', {
      command: 'sh',
      args: ['-c', `i=0; while [ $i -lt 300 ]; do printf '%0999d\\n' $i; i=$((i+1)); done; exec cat`],
      cols: 1000,
      rows: 300,
    });
    await client.request('session.wait', { id: session.id, pattern: '^0+299$', timeoutMs: 20_000 });

    const dir = mkdtempSync('/tmp/vos-pipe-test-');
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const env = { VOS_HOME: d.home };
    const toFile = await sh(`"${process.execPath}" "${VOS}" screen ${session.id} --json > "${dir}/out"`, env);
    expect(toFile.code).toBe(0);
    const full = statSync(join(dir, 'out')).size;
    expect(full).toBeGreaterThan(256 * 1024);

    // The reader starts a second after vos has filled the pipe.
    const piped = await sh(`"${process.execPath}" "${VOS}" screen ${session.id} --json | (sleep 1; wc -c)`, env);
    expect(piped.code).toBe(0);
    expect(Number(piped.stdout.trim())).toBe(full);
  });
});

describe('the background agent log', () => {
  it('stays small while a program prints megabytes of random bytes', async () => {
    const home = tempHome();
    const run = await vos(home, ['run', '--detach', '--', 'cat']);
    cleanups.push(stopBackgroundAgent(home));
    expect(run.code).toBe(0);
    const logFile = join(home, 'agent.log');
    const before = statSync(logFile).size;

    // After the noise: end any string or sequence it left open, reset the terminal, then a marker.
    const noisy = await vos(home, [
      'run',
      '--detach',
      '--',
      'sh',
      '-c',
      "head -c 4000000 /dev/urandom; printf '\\007\\033\\\\\\030\\033c'; echo NOISE-DONE; exec cat",
    ]);
    expect(noisy.code).toBe(0);
    const id = noisy.stdout.trim();
    const waited = await vos(home, ['wait', id, '--text', 'NOISE-DONE', '--timeout', '120']);
    expect(waited).toMatchObject({ code: 0, stderr: '' });

    const growth = statSync(logFile).size - before;
    expect(growth, readFileSync(logFile, 'utf8').slice(-2000)).toBeLessThan(64 * 1024);
  }, 180_000);
});
