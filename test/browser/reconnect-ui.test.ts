/**
 * An open page and agent restarts, in real Chromium against real agents of one state directory:
 * the web UI keeps its port and token (web.json, 0600), the page says it lost the agent (the
 * list greyed, uptimes stopped) and comes back by itself with the session's terminal; a port
 * taken meanwhile means another port, and the page goes on saying it lost the agent; a wrong
 * token is said as such.
 */
import { statSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, vos, type DaemonHandle } from '../helpers/agent-process.js';
import { launchChromium, type BrowserHandle } from '../helpers/browser.js';

const ARGS = ['--name', 'reconnect-ui', '--web'];
const ENV = { VOS_MDNS: '0', VOS_LISTEN: 'none' };

let agent: DaemonHandle;
let chromium: BrowserHandle;
let squatter: Server | null = null;

beforeAll(async () => {
  agent = await startDaemon({ args: ARGS, env: ENV });
  chromium = await launchChromium();
});

afterAll(async () => {
  squatter?.close();
  await chromium?.close();
  await agent?.stop();
});

const webUrl = (a: DaemonHandle): string => /web UI: (\S+)/.exec(a.stdout())![1]!;

describe('reconnecting after an agent restart', () => {
  it('keeps port and token, says it lost the agent meanwhile, and comes back by itself', async () => {
    const url = webUrl(agent);
    const file = join(agent.home, 'web.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const kept = JSON.parse(readFileSync(file, 'utf8')) as { port: number; token: string };
    expect(url).toBe(`http://127.0.0.1:${kept.port}/?token=${kept.token}`);

    const id = (await vos(agent.home, ['run', '-d', '--name', 'survivor', '--', 'bash', '--norc', '--noprofile'], { PS1: 'rc$ ' })).stdout.trim();
    const page = await chromium.browser.newPage({ viewport: { width: 1100, height: 700 } });
    try {
      await page.goto(url);
      const status = page.getByTestId('connection-status');
      await status.and(page.locator('[data-status="connected"]')).waitFor();
      await page.locator(`.session-row[data-session-id="${id}"]`).click();
      await page.locator('.xterm-rows').filter({ hasText: 'rc$' }).waitFor();

      await agent.stop({ keepHome: true });
      await status.and(page.locator('[data-status="lost"]')).waitFor();
      expect(await status.textContent()).toBe('lost the agent — reconnecting');
      expect(await page.getByTestId('connection-banner').textContent()).toContain('Lost the agent — reconnecting');
      expect(await page.getByTestId('empty-state').textContent()).toContain('Lost the agent');
      // The session is still listed, greyed, and its uptime no longer moves.
      const row = page.locator(`.session-row[data-session-id="${id}"]`);
      await page.locator('.session-list.stale').waitFor();
      const uptime = await row.locator('.uptime').textContent();
      await page.waitForTimeout(1300);
      expect(await row.locator('.uptime').textContent()).toBe(uptime);

      agent = await startDaemon({ home: agent.home, args: ARGS, env: ENV });
      expect(webUrl(agent)).toBe(url);
      await status.and(page.locator('[data-status="connected"]')).waitFor();
      // The list is fresh again once the agent has listed the sessions (just after connecting).
      await expect.poll(() => page.locator('.session-list.stale').count()).toBe(0);
      // The selection is kept: its terminal is back and typing reaches the program.
      await page.locator('.xterm-rows').filter({ hasText: 'rc$' }).waitFor();
      await page.locator('.xterm-helper-textarea').focus();
      await page.keyboard.type('echo back-$((40+2))');
      await page.keyboard.press('Enter');
      await page.locator('.xterm-rows').filter({ hasText: 'back-42' }).waitFor();
    } finally {
      await page.close();
    }
  });

  it('takes another port when its own is taken (the page keeps saying it lost the agent)', async () => {
    const url = webUrl(agent);
    const port = Number(new URL(url).port);
    const page = await chromium.browser.newPage();
    try {
      await page.goto(url);
      const status = page.getByTestId('connection-status');
      await status.and(page.locator('[data-status="connected"]')).waitFor();
      await agent.stop({ keepHome: true });
      const server = createServer((socket) => socket.destroy());
      squatter = server;
      await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
      agent = await startDaemon({ home: agent.home, args: ARGS, env: ENV });
      const moved = new URL(webUrl(agent));
      expect(moved.port).not.toBe(String(port));
      expect(moved.searchParams.get('token')).toBe(new URL(url).searchParams.get('token'));
      expect(agent.stderr()).toContain(`port ${port} is taken`);
      await status.and(page.locator('[data-status="lost"]')).waitFor();
    } finally {
      await page.close();
    }
  });

  it('says so when the token is wrong, instead of connecting forever', async () => {
    const page = await chromium.browser.newPage();
    try {
      await page.goto(webUrl(agent).replace(/token=.*/, 'token=not-the-right-one'));
      await page.getByTestId('connection-status').and(page.locator('[data-status="bad-token"]')).waitFor();
      expect(await page.getByTestId('connection-banner').textContent()).toContain("does not accept this page's token");
    } finally {
      await page.close();
    }
  });
});
