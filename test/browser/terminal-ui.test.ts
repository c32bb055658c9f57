/**
 * The terminal as a VS Code user expects it, in real Chromium against a real agent and bash:
 * Ctrl+Shift+C / Ctrl+Shift+V copy and paste, Ctrl+C copies when text is selected (and is ^C
 * for the program otherwise), copy on selection (a setting), find in the scrollback, a web link
 * that opens in a new window, the program's title (OSC 0) on the view and the window, and font
 * zoom that gives the session a new size and lasts across a reload. And the size policy: a
 * window that only watches does not resize the session for everyone (it shows it letterboxed
 * and says so); typing, resizing the window or "Fit to this window" takes the size.
 */
import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, startDaemon, vos, waitFor, type DaemonHandle } from '../helpers/agent-process.js';
import { launchChromium, type BrowserHandle } from '../helpers/browser.js';

const OUTPUT = join(ROOT, 'test-results');
let agent: DaemonHandle;
let chromium: BrowserHandle;
/** A page a link in the terminal points at (loopback only); the paths it was asked for. */
let web: Server;
const asked: string[] = [];

beforeAll(async () => {
  web = createServer((req, res) => {
    asked.push(req.url ?? '');
    res.end('ok');
  });
  await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
  mkdirSync(OUTPUT, { recursive: true });
  agent = await startDaemon({ args: ['--name', 'terminal-ui', '--web'] });
  chromium = await launchChromium();
});

afterAll(async () => {
  await chromium?.close();
  await agent?.stop();
  web?.close();
});

describe('the terminal', () => {
  it('copies, pastes, finds, opens links, shows the title and zooms', async () => {
    const url = /web UI: (\S+)/.exec(agent.stdout())![1]!;
    const id = (await vos(agent.home, ['run', '-d', '--name', 'term', '--', 'bash', '--norc', '--noprofile'], { PS1: 'term$ ' })).stdout.trim();
    const context = await chromium.browser.newContext({ viewport: { width: 1100, height: 700 } });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(url).origin });
    const page = await context.newPage();
    const clipboard = (): Promise<string> => page.evaluate(() => navigator.clipboard.readText());
    const screen = async (): Promise<string> => (await vos(agent.home, ['screen', id])).stdout;
    try {
      await page.goto(url);
      await page.locator(`.session-row[data-session-id="${id}"]`).click();
      const rows = page.locator(`[data-testid="terminal-view"][data-session-id="${id}"] .xterm-rows`);
      await rows.filter({ hasText: 'term$' }).waitFor();
      const textarea = page.locator('.xterm-helper-textarea');
      await textarea.focus();
      const run = async (line: string): Promise<void> => {
        await page.keyboard.type(line);
        await page.keyboard.press('Enter');
      };
      const row = (text: RegExp) => rows.locator('> div').filter({ hasText: text }).last();
      /** Where the first characters of a row are (xterm's screen takes the pointer over its rows). */
      const start = async (text: RegExp): Promise<{ x: number; y: number }> => {
        const box = (await row(text).boundingBox())!;
        return { x: box.x + 20, y: box.y + box.height / 2 };
      };
      const selectWord = async (text: RegExp): Promise<void> => {
        const at = await start(text);
        await page.mouse.dblclick(at.x, at.y);
      };

      // Ctrl+Shift+C copies the selection; Ctrl+C with a selection copies too, and the program gets no ^C.
      await run('echo copy-me-$((6*7))');
      await selectWord(/^copy-me-42/);
      await page.keyboard.press('Control+Shift+C');
      await expect.poll(clipboard).toBe('copy-me-42');
      await page.evaluate(() => navigator.clipboard.writeText('something else'));
      await selectWord(/^copy-me-42/);
      await page.keyboard.press('Control+C');
      await expect.poll(clipboard).toBe('copy-me-42');
      // Without a selection, Ctrl+C is the program's: bash shows ^C.
      await page.keyboard.press('Control+C');
      await waitFor('bash to get ^C', async () => (await screen()).includes('^C'));
      expect((await screen()).match(/\^C/g)).toHaveLength(1);

      // A lone Alt is the terminal's (marked handled): Electron would focus its menu bar on it.
      await page.evaluate(() => {
        const seen: string[] = [];
        (window as unknown as { altSeen: string[] }).altSeen = seen;
        for (const type of ['keydown', 'keyup'] as const) {
          window.addEventListener(type, (e) => void (e.key === 'Alt' && seen.push(`${e.type}:${e.defaultPrevented}`)));
        }
      });
      await page.keyboard.press('Alt');
      expect(await page.evaluate(() => (window as unknown as { altSeen: string[] }).altSeen)).toEqual(['keydown:true', 'keyup:true']);
      // Alt with a key is still the program's (bash: Alt+. inserts the last argument).
      await run('echo alt-$((2+3)) lastword');
      await row(/^alt-5/).waitFor();
      await page.keyboard.press('Alt+.');
      await waitFor('bash to insert the last argument', async () => /^term\$ lastword\s*$/m.test(await screen()), 10_000).catch(async (e: unknown) => {
        throw new Error(`${String(e)}\n${await screen()}`);
      });
      await page.keyboard.press('Control+U');

      // Ctrl+Shift+V pastes what the clipboard holds.
      await page.evaluate(() => navigator.clipboard.writeText('echo pasted-$((7*6))'));
      await page.keyboard.press('Control+Shift+V');
      await rows.filter({ hasText: 'term$ echo pasted-$((7*6))' }).waitFor();
      await page.keyboard.press('Enter');
      await rows.filter({ hasText: /pasted-42/ }).waitFor();

      // Copy on selection: the setting, then a selection is enough.
      await page.getByTestId('copy-on-select').click();
      expect(await page.getByTestId('copy-on-select').getAttribute('aria-pressed')).toBe('true');
      await selectWord(/^pasted-42/);
      await expect.poll(clipboard).toBe('pasted-42');

      // Find in the scrollback: 150 lines, most of them off the screen.
      await textarea.focus();
      await run("seq -f 'needle-%g' 1 150");
      await rows.filter({ hasText: 'needle-150' }).waitFor();
      await page.keyboard.press('Control+Shift+F');
      const input = page.getByTestId('find-input');
      await input.waitFor();
      expect(await input.evaluate((el) => el === document.activeElement)).toBe(true);
      await page.keyboard.type('needle-7');
      // needle-7 and needle-70 … needle-79.
      await expect.poll(() => page.getByTestId('find-count').textContent()).toMatch(/^\s*\d+ of 11\s*$/);
      const first = (await page.getByTestId('find-count').textContent())!.trim();
      await page.screenshot({ path: join(OUTPUT, 'web-ui-find.png') });
      await page.keyboard.press('Enter');
      await expect.poll(async () => (await page.getByTestId('find-count').textContent())!.trim()).not.toBe(first);
      await page.keyboard.press('Escape');
      await page.getByTestId('find-bar').waitFor({ state: 'detached' });
      expect(await textarea.evaluate((el) => el === document.activeElement)).toBe(true);
      await page.getByTestId('terminal-view').waitFor(); // Escape closed the find bar, nothing else

      // A web link opens in a new window.
      const port = (web.address() as AddressInfo).port;
      await run(`clear; echo http://127.0.0.1:${port}/from-terminal`);
      const link = new RegExp(`^http://127\\.0\\.0\\.1:${port}/from-terminal`);
      await row(link).waitFor();
      const opened = context.waitForEvent('page');
      const at = await start(link);
      await page.mouse.move(at.x, at.y);
      await page.mouse.click(at.x, at.y);
      const popup = await opened;
      await waitFor('the link to be asked for', () => asked.includes('/from-terminal'));
      expect(popup.url()).toBe(`http://127.0.0.1:${port}/from-terminal`);
      await popup.close();

      // The program's title (OSC 0) on the view and the window.
      await textarea.focus();
      await run("printf '\\033]0;%s\\007' title-from-bash");
      await page.getByTestId('program-title').filter({ hasText: 'title-from-bash' }).waitFor();
      expect(await page.title()).toBe('title-from-bash — vOS');

      // Zoom: a bigger font gives the session fewer columns; Ctrl+0 gives them back; it lasts.
      const cols = async (): Promise<number> => {
        const list = JSON.parse((await vos(agent.home, ['ls', '--json'])).stdout) as Array<{ id: string; cols: number }>;
        return list.find((s) => s.id === id)!.cols;
      };
      const before = await cols();
      const xterm = await page.locator('.xterm').elementHandle();
      await page.keyboard.press('Control+=');
      await page.keyboard.press('Control+=');
      await expect.poll(cols).toBeLessThan(before);
      // The same terminal, with a bigger font (not a new one attached again).
      expect(await xterm!.evaluate((el) => el.isConnected)).toBe(true);
      const zoomed = await cols();
      await page.reload();
      await page.locator(`.session-row[data-session-id="${id}"]`).click();
      await rows.filter({ hasText: 'term$' }).waitFor();
      await expect.poll(cols).toBe(zoomed);
      // A view opened later has the title too (the agent keeps it with the screen).
      await page.getByTestId('program-title').filter({ hasText: 'title-from-bash' }).waitFor();
      await textarea.focus();
      await page.keyboard.press('Control+0');
      await expect.poll(cols).toBe(before);
    } finally {
      await context.close();
    }
  }, 90_000);

  it('a window that only watches leaves the size alone; typing, Fit or resizing the window takes it', async () => {
    const url = /web UI: (\S+)/.exec(agent.stdout())![1]!;
    const id = (await vos(agent.home, ['run', '-d', '--name', 'sized', '--', 'bash', '--norc', '--noprofile'], { PS1: 'sized$ ' })).stdout.trim();
    const size = async (): Promise<{ cols: number; rows: number }> => {
      const list = JSON.parse((await vos(agent.home, ['ls', '--json'])).stdout) as Array<{ id: string; cols: number; rows: number }>;
      const s = list.find((x) => x.id === id)!;
      return { cols: s.cols, rows: s.rows };
    };
    const wide = await chromium.browser.newPage({ viewport: { width: 1280, height: 800 } });
    const narrow = await chromium.browser.newPage({ viewport: { width: 820, height: 560 } });
    const open = async (page: typeof wide): Promise<void> => {
      await page.goto(url);
      await page.locator(`.session-row[data-session-id="${id}"]`).click();
      await page.locator('.xterm-rows').filter({ hasText: 'sized$' }).waitFor();
    };
    try {
      await open(wide);
      const wideSize = await size();
      expect(await wide.getByTestId('size-note').count()).toBe(0);
      // The narrow window only watches: the session keeps the wide one's size, and the narrow one says so.
      await open(narrow);
      await narrow.getByTestId('size-note').filter({ hasText: `Sized by another viewer: ${wideSize.cols}×${wideSize.rows}` }).waitFor();
      expect(await narrow.locator('.terminal-host.letterboxed').count()).toBe(1);
      expect(await size()).toEqual(wideSize);

      // Typing there takes it: the program sees the narrow size, and now the wide one is letterboxed.
      await narrow.locator('.xterm-helper-textarea').focus();
      await narrow.keyboard.type('stty size');
      await narrow.keyboard.press('Enter');
      await expect.poll(async () => (await size()).cols).toBeLessThan(wideSize.cols);
      const narrowSize = await size();
      await narrow.locator('.xterm-rows').filter({ hasText: `${narrowSize.rows} ${narrowSize.cols}` }).waitFor();
      await wide.getByTestId('size-note').filter({ hasText: `Sized by another viewer: ${narrowSize.cols}×${narrowSize.rows}` }).waitFor();
      await narrow.getByTestId('size-note').waitFor({ state: 'detached' });
      // The wide window draws the session at its size (the output lines up there too).
      await wide.locator('.xterm-rows').filter({ hasText: `${narrowSize.rows} ${narrowSize.cols}` }).waitFor();
      await wide.screenshot({ path: join(OUTPUT, 'web-ui-letterboxed.png') });

      // Fit to this window: the wide one's again.
      await wide.getByTestId('take-size').click();
      await expect.poll(size).toEqual(wideSize);
      await narrow.getByTestId('size-note').waitFor();
      await wide.getByTestId('size-note').waitFor({ state: 'detached' });

      // Resizing a window is taking the size too.
      await narrow.setViewportSize({ width: 900, height: 600 });
      await expect.poll(async () => (await size()).cols).toBeLessThan(wideSize.cols);
      expect((await size()).cols).toBeGreaterThan(narrowSize.cols);
      await narrow.getByTestId('size-note').waitFor({ state: 'detached' });
    } finally {
      await wide.close();
      await narrow.close();
    }
  }, 90_000);
});
