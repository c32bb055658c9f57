/**
 * The app without the mouse, in real Chromium against a real agent: Ctrl+Shift+T opens the New
 * form from the terminal (which does not get the keys) and Enter starts the session; Escape
 * closes the form; the arrow keys move through the session list and Enter opens one;
 * Ctrl+Shift+M opens the move dialog, which keeps Tab inside and closes on Escape; sessions of
 * one name show their short ids; hover and selection look different.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, vos, type DaemonHandle } from '../helpers/agent-process.js';
import { launchChromium, type BrowserHandle } from '../helpers/browser.js';

let agent: DaemonHandle;
let chromium: BrowserHandle;

beforeAll(async () => {
  agent = await startDaemon({ args: ['--name', 'keyboard-ui', '--web'] });
  chromium = await launchChromium();
});

afterAll(async () => {
  await chromium?.close();
  await agent?.stop();
});

describe('the keyboard', () => {
  it('shortcuts, Enter, Escape, arrows and a trapped Tab', async () => {
    const first = (await vos(agent.home, ['run', '-d', '--name', 'kb-first', '--', 'cat'])).stdout.trim();
    const page = await chromium.browser.newPage({ viewport: { width: 1100, height: 700 } });
    const active = (): Promise<string | null> =>
      page.evaluate(() => {
        const el = document.activeElement;
        return el?.getAttribute('data-session-id') ?? el?.getAttribute('data-testid') ?? el?.className ?? null;
      });
    try {
      await page.goto(/web UI: (\S+)/.exec(agent.stdout())![1]!);
      await page.locator(`.session-row[data-session-id="${first}"]`).click();
      const textarea = page.locator('.xterm-helper-textarea');
      await page.locator(`[data-testid="terminal-view"][data-session-id="${first}"] .xterm-rows`).waitFor();
      await textarea.focus();

      // From the terminal: Ctrl+Shift+T is the app's; the program (cat) gets nothing.
      await page.keyboard.press('Control+Shift+T');
      const form = page.getByTestId('new-session-form');
      await form.waitFor();
      await page.keyboard.press('Escape');
      await form.waitFor({ state: 'detached' });
      await textarea.focus();
      await page.keyboard.press('Control+Shift+T');
      await form.waitFor();
      expect(await form.getByLabel('Command').evaluate((el) => el === document.activeElement)).toBe(true);
      await page.keyboard.type("sh -c 'echo started-by-keyboard; exec cat'");
      await page.keyboard.press('Enter');
      await page.locator('.xterm-rows').filter({ hasText: 'started-by-keyboard' }).waitFor();
      await form.waitFor({ state: 'detached' });
      const firstScreen = await vos(agent.home, ['screen', first]);
      expect(firstScreen.stdout.trim()).toBe(''); // no ^T reached cat

      // Arrows through the list, Enter opens.
      const rows = page.locator('.session-row');
      expect(await rows.count()).toBe(2);
      const ids = await rows.evaluateAll((els) => els.map((e) => e.getAttribute('data-session-id')));
      await rows.nth(0).focus();
      await page.keyboard.press('ArrowDown');
      expect(await active()).toBe(ids[1]);
      await page.keyboard.press('ArrowUp');
      expect(await active()).toBe(ids[0]);
      await page.keyboard.press('End');
      expect(await active()).toBe(ids[1]);
      await page.keyboard.press('Enter');
      await page.locator(`[data-testid="terminal-view"][data-session-id="${ids[1]}"]`).waitFor();

      // Ctrl+Shift+M: the move dialog for the selected session; Tab stays in it; Escape closes it.
      await textarea.focus();
      await page.keyboard.press('Control+Shift+M');
      const dialog = page.getByTestId('move-dialog');
      await dialog.waitFor();
      for (let i = 0; i < 3; i++) {
        await page.keyboard.press('Tab');
        expect(await page.evaluate(() => !!document.activeElement?.closest('[data-testid="move-dialog"]'))).toBe(true);
      }
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'detached' });

      // Two sessions of one name are told apart by their short ids; hover and selection differ.
      const twin = (await vos(agent.home, ['run', '-d', '--name', 'kb-first', '--', 'cat'])).stdout.trim();
      await page.locator(`.session-row[data-session-id="${twin}"] [data-testid="short-id"]`).filter({ hasText: `#${twin.slice(0, 6)}` }).waitFor();
      expect(await page.locator(`.session-row[data-session-id="${first}"] [data-testid="short-id"]`).textContent()).toBe(`#${first.slice(0, 6)}`);
      await page.locator(`.session-row[data-session-id="${twin}"]`).hover();
      const look = (id: string): Promise<string> =>
        page.locator(`.session-row[data-session-id="${id}"]`).evaluate((el) => `${getComputedStyle(el).backgroundColor} ${getComputedStyle(el).borderColor}`);
      expect(await look(twin)).not.toBe(await look(ids[1]!)); // hovered vs selected
    } finally {
      await page.close();
    }
  });
});
