/**
 * The app and the other machines, in real Chromium against two real agents on loopback paired
 * through the API: a paired machine that goes away leaves its sessions listed, greyed as
 * unreachable (the watched one's terminal says so), and they come back with it; stale machines
 * folded away and forgotten (button and `vos peer forget`); no horizontal scrolling when narrow.
 */
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src-main/api/client.js';
import { startDaemon, tempHome, vos, waitFor, type DaemonHandle } from '../helpers/agent-process.js';
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
  // alpha remembers two machines added by hand long ago that are gone (nothing answers there).
  const alphaHome = tempHome();
  const stale = (name: string, n: number): object => ({ id: String(n).repeat(64), name, paired: false, pairedAt: null, addresses: [`127.0.0.1:${n}`], manual: true, lastSeen: Date.now() - 86_400_000 });
  writeFileSync(join(alphaHome, 'peers.json'), JSON.stringify({ version: 1, peers: [stale('old_workstation_in_the_basement_by_the_boiler', 1), stale('old-laptop', 2)] }), { mode: 0o600 });
  [alpha, beta] = await Promise.all([startDaemon({ home: alphaHome, args: ['--name', 'alpha', '--web'] }), startDaemon({ args: betaArgs })]);
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

  it('folds offline machines away, forgets them (button and vos peer forget), and does not scroll sideways when narrow', async () => {
    const page = await chromium.browser.newPage({ viewport: { width: 1100, height: 700 } });
    try {
      await page.goto(webUrl(alpha));
      const idle = page.getByTestId('idle-machines');
      await idle.waitFor();
      expect(await idle.locator('summary').textContent()).toBe('2 offline machines, not paired');
      expect(await page.locator('[data-peer="old-laptop"]').isVisible()).toBe(false); // folded
      await page.locator('[data-peer="beta"]').waitFor(); // paired: always shown

      // Narrow: nothing in the sidebar (long names included) scrolls sideways.
      await idle.locator('summary').click();
      await vos(alpha.home, ['run', '-d', '--name', 'a_session_with_a_rather_long_name_without_spaces', '--', 'sleep', '600']);
      await page.locator('.session-row', { hasText: 'a_session_with' }).waitFor();
      for (const width of [420, 700]) {
        await page.setViewportSize({ width, height: 700 });
        const overflow = await page.evaluate(() =>
          ['.sidebar', '.sessions-panel', '.peers-panel', '.layout'].flatMap((sel) => {
            const el = document.querySelector(sel)!;
            return el.scrollWidth > el.clientWidth ? [`${sel}: ${el.scrollWidth} > ${el.clientWidth}`] : [];
          }).concat(document.documentElement.scrollWidth > window.innerWidth ? ['page'] : []),
        );
        expect(overflow, `at ${width} px`).toEqual([]);
      }

      await page.locator('[data-peer="old-laptop"]').getByTestId('forget').click();
      await page.locator('[data-peer="old-laptop"]').waitFor({ state: 'detached' });
      const names = async (): Promise<string[]> => (JSON.parse((await vos(alpha.home, ['peers', '--json'])).stdout) as Array<{ name: string }>).map((p) => p.name);
      expect(await names()).not.toContain('old-laptop');
      // From the command line: the app follows.
      const forgot = await vos(alpha.home, ['peer', 'forget', 'old_workstation_in_the_basement_by_the_boiler']);
      expect(forgot.code, forgot.stderr).toBe(0);
      await idle.waitFor({ state: 'detached' });
      expect(await names()).toEqual(['beta']);
      // A paired machine is unpaired first.
      const refused = await vos(alpha.home, ['peer', 'forget', 'beta']);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain('unpair it first');
    } finally {
      await page.close();
    }
  });

  it('asks before unpairing; after pairing again from the app the focus is not on Unpair', async () => {
    const page = await chromium.browser.newPage({ viewport: { width: 1100, height: 700 } });
    try {
      await page.goto(webUrl(alpha));
      const row = page.locator('[data-peer="beta"]');
      await row.locator('.badge.paired').waitFor();
      await row.getByTestId('unpair').click();
      const dialog = page.getByTestId('unpair-dialog');
      await dialog.waitFor();
      expect(await dialog.textContent()).toContain('Unpair beta?');
      // The safe answer has the focus: Enter cancels.
      const focused = (): Promise<string | null | undefined> => page.evaluate(() => document.activeElement?.getAttribute('data-testid'));
      expect(await focused()).toBe('unpair-dialog-cancel');
      // Something behind the dialog that takes the focus (a terminal appearing, on a busy
      // machine, after the dialog opened) does not keep it: Enter still cancels.
      await page.evaluate(() => document.querySelector<HTMLElement>('[data-testid="peer-address"]')?.focus());
      expect(await focused()).toBe('unpair-dialog-cancel');
      await page.keyboard.press('Enter');
      await dialog.waitFor({ state: 'detached' });
      expect(await row.locator('.badge.paired').count()).toBe(1);
      await row.getByTestId('unpair').click();
      await page.getByTestId('unpair-dialog-confirm').click();
      await row.locator('.badge.paired').waitFor({ state: 'detached' });
      const paired = async (): Promise<boolean> =>
        (JSON.parse((await vos(alpha.home, ['peers', '--json'])).stdout) as Array<{ name: string; paired: boolean }>).some((p) => p.name === 'beta' && p.paired);
      expect(await paired()).toBe(false);

      // Pair again from the app: beta's user accepts (through its API), alpha's confirms in the dialog.
      await row.getByTestId('pair').click();
      const confirm = page.locator('[data-testid="pair-dialog"][data-direction="outgoing"]');
      await confirm.waitFor();
      const code = (await page.getByTestId('pair-dialog-code').textContent())!;
      const cb = await beta.connect();
      await waitFor('the request on beta', async () => (await cb.request('pair.pending', {})).length > 0);
      await cb.request('pair.accept', { peer: 'alpha', code });
      await page.getByTestId('pair-match').click();
      await row.locator('.badge.paired').waitFor();
      await confirm.waitFor({ state: 'detached' });
      await page.evaluate(() => new Promise((resolve) => setTimeout(resolve, 0)));
      expect(await page.evaluate(() => document.activeElement?.getAttribute('data-testid') ?? document.activeElement?.tagName)).not.toBe('unpair');
      expect(await paired()).toBe(true);
    } finally {
      await page.close();
    }
  });
});
