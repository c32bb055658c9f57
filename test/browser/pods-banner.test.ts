/**
 * The app on a machine that gives sessions no pod (the agent's probe made to fail with its test
 * hook): a banner says why and what to do, and the session list marks such sessions.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, startDaemon, vos, type DaemonHandle } from '../helpers/agent-process.js';
import { launchChromium, type BrowserHandle } from '../helpers/browser.js';

const OUTPUT = join(ROOT, 'test-results');

let agent: DaemonHandle;
let plain: DaemonHandle;
let chromium: BrowserHandle;

beforeAll(async () => {
  mkdirSync(OUTPUT, { recursive: true });
  agent = await startDaemon({ args: ['--name', 'no-pods-ui', '--web', '--no-mdns'], env: { VOS_TEST_PROBE_NO_USERNS: '1' } });
  plain = await startDaemon({ args: ['--name', 'pods-ui', '--web', '--no-mdns'] });
  chromium = await launchChromium();
});

afterAll(async () => {
  await chromium?.close();
  await agent?.stop();
  await plain?.stop();
});

const urlOf = (d: DaemonHandle): string => /web UI: (\S+)/.exec(d.stdout())![1]!;

describe('the pods banner', () => {
  it('shows the reason and the fix, and the list marks the session', async () => {
    const id = (await vos(agent.home, ['run', '-d', '--name', 'no-pod-shell', '--', 'sh', '-c', 'exec cat'])).stdout.trim();
    const page = await chromium.browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      await page.goto(urlOf(agent));
      await page.getByTestId('connection-status').filter({ hasText: 'connected' }).waitFor();
      const banner = page.getByTestId('pods-banner');
      await banner.waitFor();
      expect(await banner.textContent()).toContain('cannot be checkpointed or moved');
      expect(await banner.textContent()).toContain('VOS_TEST_PROBE_NO_USERNS');
      expect((await page.getByTestId('pods-fix').textContent())?.length).toBeGreaterThan(10);
      const row = page.locator(`[data-session-id="${id}"]`).first();
      await row.getByTestId('no-pod').waitFor();
      await page.screenshot({ path: join(OUTPUT, 'pods-banner.png') });
      await banner.getByRole('button', { name: 'Hide' }).click();
      await banner.waitFor({ state: 'detached' });
    } finally {
      await page.close();
    }
  });

  it('is not there where pods can be made', async () => {
    const id = (await vos(plain.home, ['run', '-d', '--name', 'pod-shell', '--', 'sh', '-c', 'exec cat'])).stdout.trim();
    const page = await chromium.browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      await page.goto(urlOf(plain));
      await page.getByTestId('connection-status').filter({ hasText: 'connected' }).waitFor();
      await page.locator(`[data-session-id="${id}"]`).first().waitFor();
      expect(await page.getByTestId('pods-banner').count()).toBe(0);
      expect(await page.getByTestId('no-pod').count()).toBe(0);
    } finally {
      await page.close();
    }
  });
});
