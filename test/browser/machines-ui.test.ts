/**
 * The app and the other machines, in real Chromium against two real agents on loopback paired
 * through the API: a paired machine that goes away leaves its sessions listed, greyed as
 * unreachable (the watched one's terminal says so), and they come back with it.
 */
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src-main/api/client.js';
import { startDaemon, vos, waitFor, type DaemonHandle } from '../helpers/agent-process.js';
import { launchChromium, type BrowserHandle } from '../helpers/browser.js';

let alpha: DaemonHandle;
let beta: DaemonHandle;
let betaArgs: string[];
let chromium: BrowserHandle;

const webUrl = (d: DaemonHandle): string => /web UI: (\S+)/.exec(d.stdout())![1]!;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** alpha asks, beta accepts, alpha's user confirms the code: paired. */
async function pair(ca: ApiClient, cb: ApiClient, betaAddress: string): Promise<void> {
  await ca.request('peer.add', { address: betaAddress });
  await waitFor('alpha to see beta', async () => (await ca.request('peer.list', {})).some((p) => p.name === 'beta' && p.online), 15_000, 100);
  const { code } = await ca.request('pair.request', { peer: 'beta' });
  const waiting = ca.request('pair.wait', { peer: 'beta', timeoutMs: 20_000 });
  await waitFor('the request on beta', async () => (await cb.request('pair.pending', {})).length > 0);
  await cb.request('pair.accept', { peer: 'alpha', code });
  await ca.request('pair.confirm', { peer: 'beta', code });
  await waiting;
}

beforeAll(async () => {
  const betaAddress = `127.0.0.1:${await freePort()}`;
  betaArgs = ['--name', 'beta', '--listen', betaAddress];
  [alpha, beta] = await Promise.all([startDaemon({ args: ['--name', 'alpha', '--web'] }), startDaemon({ args: betaArgs })]);
  chromium = await launchChromium();
  await pair(await alpha.connect(), await beta.connect(), betaAddress);
});

afterAll(async () => {
  await chromium?.close();
  await alpha?.stop();
  await beta?.stop();
});

describe('other machines in the app', () => {
  it("greys a machine's sessions while it cannot be reached, says so in the terminal, and brings them back", async () => {
    const id = (await vos(beta.home, ['run', '-d', '--name', 'on-beta', '--', 'bash', '--norc', '--noprofile'], { PS1: 'beta$ ' })).stdout.trim();
    const page = await chromium.browser.newPage({ viewport: { width: 1100, height: 700 } });
    try {
      await page.goto(webUrl(alpha));
      const row = page.locator(`.session-row[data-session-id^="${id}@"]`);
      await row.click();
      await page.locator('.xterm-rows').filter({ hasText: 'beta$' }).waitFor();

      await beta.stop({ keepHome: true });
      await page.locator(`.session-row.unreachable[data-session-id^="${id}@"]`).waitFor();
      expect(await row.locator('.state').textContent()).toBe('unreachable');
      expect(await page.locator('.machine-heading[data-machine="beta"]').textContent()).toContain('cannot be reached');
      // Still selected: the pane says why, and keeps the last screen.
      const note = page.getByTestId('unreachable-note');
      await note.waitFor();
      expect(await note.textContent()).toContain('beta cannot be reached');
      expect(await page.locator('.xterm-rows').textContent()).toContain('beta$');

      beta = await startDaemon({ home: beta.home, args: betaArgs });
      await page.locator(`.session-row:not(.unreachable)[data-session-id^="${id}@"]`).waitFor({ timeout: 30_000 });
      await note.waitFor({ state: 'detached' });
      await page.locator('.xterm-rows').filter({ hasText: 'beta$' }).waitFor();
      await page.locator('.xterm-helper-textarea').focus();
      await page.keyboard.type('echo reached-again-$((6*7))');
      await page.keyboard.press('Enter');
      await page.locator('.xterm-rows').filter({ hasText: 'reached-again-42' }).waitFor();
    } finally {
      await page.close();
    }
  });
});
