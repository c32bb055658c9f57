/**
 * `npm start` in web mode (scripts/start.js, where Electron cannot run): Ctrl-C at its terminal
 * (SIGINT to the whole foreground process group, as a terminal sends it) stops the agent in
 * order, says that the sessions go on, and they do: the next agent finds the session running.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT, endHosts, hostPids, startDaemon, tempHome, vos, waitFor, type DaemonHandle } from '../helpers/agent-process.js';

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

describe('npm start (web mode)', () => {
  it('Ctrl-C stops the agent and says the sessions go on; they do', async () => {
    const home = tempHome();
    cleanup.push(async () => {
      await endHosts(home);
    });
    // Its own process group, as a terminal's foreground job; no Electron display, so web mode.
    const start = spawn(process.execPath, [join(ROOT, 'scripts', 'start.js')], {
      cwd: ROOT,
      detached: true,
      env: { ...process.env, VOS_HOME: home, VOS_MDNS: '0', VOS_LISTEN: 'none', DISPLAY: '', WAYLAND_DISPLAY: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    start.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    start.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const ended = new Promise<number | null>((resolve) => start.once('exit', (code) => resolve(code)));
    cleanup.push(async () => {
      if (start.exitCode === null && start.signalCode === null) process.kill(-start.pid!, 'SIGKILL');
    });
    await waitFor('the web UI address', () => /web UI: http/.test(out), 20_000);
    const agentPid = Number(/running \(pid (\d+)\)/.exec(out)![1]);
    const run = await vos(home, ['run', '-d', '--name', 'goes-on', '--', 'sh', '-c', 'echo still-here; exec cat']);
    expect(run.code).toBe(0);
    const id = run.stdout.trim();

    process.kill(-start.pid!, 'SIGINT'); // what Ctrl-C does
    expect(await ended).toBe(0);
    expect(out).toContain('SIGINT: stopping; the sessions keep running');
    expect(out).toContain('agent stopped');
    expect(out).toContain('Sessions were not ended: their programs keep running.');
    expect(() => process.kill(agentPid, 0)).toThrow();
    expect(hostPids(home).length).toBe(1);

    const next: DaemonHandle = await startDaemon({ home, env: { VOS_MDNS: '0', VOS_LISTEN: 'none' } });
    cleanup.push(() => next.stop());
    const c = await next.connect();
    expect(await c.request('session.list', {})).toMatchObject([{ id, name: 'goes-on', state: 'running' }]);
    const screen = await c.request('session.screen', { id });
    expect(screen.lines.join('\n')).toContain('still-here');
  });
});
