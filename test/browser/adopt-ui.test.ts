/**
 * "Adopt…" in the app, in real Chromium against a real agent in web mode: the list shows bash
 * running under `script` on another terminal (this test's pty) with its job, and not the
 * agent's own sessions; Adopt takes it over into a new session, selected, whose terminal view
 * shows bash answering what is typed into it there. A refusal (the test hook for
 * kernel.yama.ptrace_scope 3 in a second agent) shows its reason in the panel.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pty from '@lydell/node-pty';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, startDaemon, vos, waitFor, type DaemonHandle } from '../helpers/agent-process.js';
import { launchChromium, type BrowserHandle } from '../helpers/browser.js';

const OUTPUT = join(ROOT, 'test-results');

let agent: DaemonHandle;
let refusing: DaemonHandle;
let chromium: BrowserHandle;
const urlOf = (d: DaemonHandle): string => /web UI: (\S+)/.exec(d.stdout())![1]!;

beforeAll(async () => {
  mkdirSync(OUTPUT, { recursive: true });
  agent = await startDaemon({ args: ['--name', 'adopt-ui', '--web', '--no-mdns'] });
  refusing = await startDaemon({ args: ['--name', 'adopt-refused', '--web', '--no-mdns'], env: { VOS_TEST_PTRACE_SCOPE: '3' } });
  chromium = await launchChromium();
});

afterAll(async () => {
  await chromium?.close();
  await agent?.stop();
  await refusing?.stop();
});

/** bash under script on a pty of this test, with a job; its pid, and what ends them. */
async function bashElsewhere(job: string): Promise<{ bash: number; end: () => void }> {
  let out = '';
  const term = pty.spawn('script', ['-qfc', 'exec env PS1="elsewhere$ " bash --norc --noprofile', '/dev/null'], {
    cols: 80,
    rows: 24,
    env: { ...(process.env as Record<string, string>), PS1: 'elsewhere$ ' },
  });
  term.onData((d) => (out += d));
  await waitFor('bash to prompt', () => /elsewhere\$ $/.test(out));
  term.write(`${job} &\r`);
  await waitFor('its job', () => /\[1\] \d+/.test(out));
  const bash = Number(execFileSync('pgrep', ['-P', String(term.pid), '-x', 'bash'], { encoding: 'utf8' }).trim());
  const end = (): void => {
    term.kill('SIGKILL');
    try {
      execFileSync('pkill', ['-KILL', '-x', '-f', job]);
    } catch {
      /* gone */
    }
  };
  return { bash, end };
}

describe('Adopt… in the app', () => {
  it('lists bash in another terminal (not the agent\'s own sessions) and adopts it into a selected session that answers there', async () => {
    const own = (await vos(agent.home, ['run', '-d', '--name', 'own', '--', 'sh', '-c', 'exec cat'])).stdout.trim();
    const job = 'sleep 900010';
    const { bash, end } = await bashElsewhere(job);
    const page = await chromium.browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      await page.goto(urlOf(agent));
      await page.getByTestId('connection-status').filter({ hasText: 'connected' }).waitFor();
      await page.locator(`[data-session-id="${own}"]`).first().waitFor();
      await page.getByTestId('adopt-session').click();
      const row = page.locator(`[data-testid="adoptable"][data-pid="${bash}"]`);
      await row.waitFor();
      expect(await row.textContent()).toMatch(/pts\/\d+ bash --norc --noprofile/);
      // Its job is listed under it; the agent's own session (cat in a pod) is not.
      await page.locator('[data-testid="adoptable"]', { hasText: job }).waitFor();
      expect(await page.locator('[data-testid="adoptable"]', { hasText: /^.*\bcat\b/ }).count()).toBe(0);
      await page.screenshot({ path: join(OUTPUT, 'adopt-panel.png') });

      await row.getByTestId('adopt-button').click();
      await page.getByTestId('adopt-panel').waitFor({ state: 'detached' });
      const sessions = JSON.parse((await vos(agent.home, ['ls', '--json'])).stdout) as { id: string; name: string }[];
      const adopted = sessions.find((s) => s.id !== own)!;
      expect(adopted.name).toBe('bash');
      const view = page.locator(`[data-testid="terminal-view"][data-session-id="${adopted.id}"]`);
      await view.waitFor();
      // Typed into its terminal view in the app.
      await view.locator('.xterm').click();
      await page.keyboard.type('echo app-$((6*7))\r');
      await waitFor('bash to answer in the app', async () => /^app-42$/m.test((await vos(agent.home, ['screen', adopted.id])).stdout));
      await page.screenshot({ path: join(OUTPUT, 'adopted-session.png') });
      await vos(agent.home, ['kill', adopted.id, '--signal', 'KILL']);
    } finally {
      await page.close();
      end();
    }
  });

  it('shows a refusal with its reason in the panel', async () => {
    const { bash, end } = await bashElsewhere('sleep 900011');
    const page = await chromium.browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      await page.goto(urlOf(refusing));
      await page.getByTestId('connection-status').filter({ hasText: 'connected' }).waitFor();
      await page.getByTestId('adopt-session').click();
      await page.locator(`[data-testid="adoptable"][data-pid="${bash}"]`).getByTestId('adopt-button').click();
      const error = page.getByTestId('adopt-error');
      await error.waitFor();
      expect(await error.textContent()).toMatch(/kernel\.yama\.ptrace_scope is 3/);
      expect(JSON.parse((await vos(refusing.home, ['ls', '--json'])).stdout)).toEqual([]);
    } finally {
      await page.close();
      end();
    }
  });
});
