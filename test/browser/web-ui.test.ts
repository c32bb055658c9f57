/**
 * The app's renderer in real Chromium against a real agent in web mode: the session list, the
 * terminal view (typing reaches the program, its output appears), starting a session from the UI,
 * and the token that guards the API.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ROOT, startDaemon, vos, type DaemonHandle } from '../helpers/agent-process.js';
import { launchChromium, type BrowserHandle } from '../helpers/browser.js';

const OUTPUT = join(ROOT, 'test-results');

let agent: DaemonHandle;
let chromium: BrowserHandle;
let url: string;

beforeAll(async () => {
  mkdirSync(OUTPUT, { recursive: true });
  agent = await startDaemon({ args: ['--name', 'web-test', '--web'] });
  url = /web UI: (\S+)/.exec(agent.stdout())![1]!;
  chromium = await launchChromium();
});

afterAll(async () => {
  await chromium?.close();
  await agent?.stop();
});

describe('web UI', () => {
  it('lists a running session, shows its terminal, and typing reaches the program', async () => {
    const run = await vos(agent.home, ['run', '-d', '--name', 'browser-shell', '--', 'bash', '--norc', '--noprofile'], { PS1: 'web$ ' });
    const id = run.stdout.trim();
    const page = await chromium.browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      await page.goto(url);
      // The token leaves the address bar once read.
      await page.waitForFunction(() => !location.search.includes('token'));
      await page.getByTestId('connection-status').filter({ hasText: 'connected' }).waitFor();
      const row = page.locator(`[data-session-id="${id}"]`).first();
      await row.waitFor();
      await expect.poll(() => row.textContent()).toContain('browser-shell');
      expect(await row.textContent()).toContain('running');
      expect(await row.textContent()).toContain('bash --norc --noprofile');

      await row.click();
      const view = page.getByTestId('terminal-view');
      await view.waitFor();
      await page.locator('.xterm-rows').filter({ hasText: 'web$' }).waitFor();
      await page.locator('.xterm-helper-textarea').focus();
      await page.keyboard.type('echo from-the-browser-$((6*7))');
      await page.keyboard.press('Enter');
      await page.locator('.xterm-rows').filter({ hasText: 'from-the-browser-42' }).waitFor();
      // The program really got it: the agent's own mirror shows it too.
      const screen = await vos(agent.home, ['screen', id]);
      expect(screen.stdout).toMatch(/^from-the-browser-42$/m);
      // And output produced elsewhere appears live.
      await vos(agent.home, ['send', id, 'echo typed-by-cli\\r']);
      await page.locator('.xterm-rows').filter({ hasText: 'typed-by-cli' }).waitFor();
      await page.screenshot({ path: join(OUTPUT, 'web-ui-session.png') });
    } finally {
      await page.close();
    }
  });

  it('starts a new session from the UI', async () => {
    const page = await chromium.browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      await page.goto(url);
      await page.getByTestId('connection-status').filter({ hasText: 'connected' }).waitFor();
      await page.getByTestId('new-session').click();
      const form = page.getByTestId('new-session-form');
      const command = form.getByLabel('Command');
      await command.fill("sh -c 'echo started-from-ui; exec cat'");
      await form.getByLabel('Name').fill('from-ui');
      await expect.poll(() => command.inputValue()).toBe("sh -c 'echo started-from-ui; exec cat'");
      await form.getByRole('button', { name: 'Start' }).click();
      await page.locator('.xterm-rows').filter({ hasText: 'started-from-ui' }).waitFor();
      const ls = JSON.parse((await vos(agent.home, ['ls', '--json'])).stdout) as Array<{ name: string; command: string; args: string[] }>;
      expect(ls.filter((s) => s.name === 'from-ui')).toMatchObject([{ command: 'sh', args: ['-c', 'echo started-from-ui; exec cat'] }]);
    } finally {
      await page.close();
    }
  });

  it('shows a clear empty state and asks for the token when it is missing', async () => {
    const page = await chromium.browser.newPage();
    try {
      await page.goto(url.replace(/\?token=.*/, ''));
      await page.getByRole('alert').filter({ hasText: 'needs the address the agent printed' }).waitFor();
    } finally {
      await page.close();
    }
  });

  it('refuses the API without the right token or from another origin', async () => {
    const base = url.replace(/^http/, 'ws').replace(/\/\?token=.*/, '');
    const token = new URL(url).searchParams.get('token')!;
    const outcome = (address: string, headers: Record<string, string> = {}): Promise<string> =>
      new Promise((resolve) => {
        const ws = new WebSocket(address, { headers });
        ws.on('open', () => {
          ws.close();
          resolve('open');
        });
        ws.on('unexpected-response', (_req, res) => resolve(String(res.statusCode)));
        ws.on('error', () => resolve('error'));
      });
    expect(await outcome(`${base}/api?token=wrong`)).toBe('403');
    expect(await outcome(`${base}/api`)).toBe('403');
    expect(await outcome(`${base}/api?token=${token}`, { Origin: 'http://evil.example' })).toBe('403');
    expect(await outcome(`${base}/api?token=${token}`)).toBe('open');
  });

  it('sends a content security policy that forbids framing, and the app runs under it', async () => {
    const origin = new URL(url).origin;
    for (const path of ['/', '/index.html', '/no-such-file']) {
      const res = await fetch(`${origin}${path}`);
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp, path).toContain("frame-ancestors 'none'");
      expect(csp, path).toContain("script-src 'self'");
      expect(csp, path).toContain(`connect-src 'self' ws://127.0.0.1:${new URL(url).port}`);
      expect(res.headers.get('x-frame-options'), path).toBe('DENY');
      expect(res.headers.get('x-content-type-options'), path).toBe('nosniff');
      expect(res.headers.get('referrer-policy'), path).toBe('no-referrer');
    }
    const page = await chromium.browser.newPage();
    const violations: string[] = [];
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
    });
    try {
      await page.addInitScript(() => {
        document.addEventListener('securitypolicyviolation', (e) => console.error(`Content Security Policy violation: ${e.violatedDirective} ${e.blockedURI}`));
      });
      await page.goto(url);
      await page.getByTestId('connection-status').filter({ hasText: 'connected' }).waitFor();
      const run = await vos(agent.home, ['run', '-d', '--name', 'csp-shell', '--', 'sh', '-c', 'echo under-the-policy; exec cat']);
      await page.locator(`[data-session-id="${run.stdout.trim()}"]`).first().click();
      await page.locator('.xterm-rows').filter({ hasText: 'under-the-policy' }).waitFor();
      expect(violations).toEqual([]);
    } finally {
      await page.close();
    }
  });
  it('the sidebar is resized by dragging its edge or with the arrow keys, and keeps its width across a reload', async () => {
    const page = await chromium.browser.newPage({ viewport: { width: 1200, height: 700 } });
    try {
      await page.goto(url);
      await page.getByTestId('connection-status').filter({ hasText: 'connected' }).waitFor();
      const sidebar = page.locator('.sidebar');
      const width = async (): Promise<number> => (await sidebar.boundingBox())!.width;
      const before = await width();
      const edge = (await page.getByTestId('sidebar-resizer').boundingBox())!;
      await page.mouse.move(edge.x + edge.width / 2, edge.y + 200);
      await page.mouse.down();
      await page.mouse.move(edge.x + 150, edge.y + 220, { steps: 5 });
      await page.mouse.up();
      await expect.poll(width).toBeGreaterThan(before + 100);
      const dragged = await width();
      // The keys, on the focused edge.
      await page.getByTestId('sidebar-resizer').focus();
      await page.keyboard.press('ArrowLeft');
      await page.keyboard.press('ArrowLeft');
      await expect.poll(width).toBeCloseTo(dragged - 32, 0);
      expect(await page.getByTestId('sidebar-resizer').getAttribute('aria-valuenow')).toBe(String(Math.round(dragged - 32)));
      await page.reload();
      await page.getByTestId('connection-status').filter({ hasText: 'connected' }).waitFor();
      await expect.poll(width).toBeCloseTo(dragged - 32, 0);
      // Double-click: the default again; no horizontal scrolling at a narrow width.
      await page.getByTestId('sidebar-resizer').dblclick();
      await expect.poll(width).toBeCloseTo(before, 0);
      await page.setViewportSize({ width: 560, height: 600 });
      expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    } finally {
      await page.close();
    }
  });
  it('notifies on the desktop when a session ends while the window is behind others; a browser asks first', async () => {
    const asking = await chromium.browser.newPage();
    try {
      await asking.goto(url);
      await asking.getByTestId('enable-notices').waitFor(); // not asked yet: the app offers it
    } finally {
      await asking.close();
    }
    const context = await chromium.browser.newContext();
    await context.grantPermissions(['notifications'], { origin: new URL(url).origin });
    await context.addInitScript(() => {
      // What the page shows on the desktop, recorded; and the window behind another one.
      const shown: Array<{ title: string; body: string | undefined }> = [];
      (window as unknown as { shown: typeof shown }).shown = shown;
      const Real = window.Notification;
      class Recording extends Real {
        constructor(title: string, options?: NotificationOptions) {
          super(title, options);
          shown.push({ title, body: options?.body });
        }
      }
      Object.defineProperty(window, 'Notification', { value: Recording });
      document.hasFocus = () => false;
    });
    const page = await context.newPage();
    try {
      const id = (await vos(agent.home, ['run', '-d', '--name', 'ender', '--', 'sh', '-c', 'read x; exit 3'])).stdout.trim();
      await page.goto(url);
      await page.locator(`.session-row[data-session-id="${id}"]`).waitFor();
      expect(await page.getByTestId('enable-notices').count()).toBe(0); // allowed already
      await vos(agent.home, ['send', id, '\\r']);
      await expect
        .poll(() => page.evaluate(() => (window as unknown as { shown: unknown[] }).shown))
        .toEqual([{ title: '“ender” ended', body: 'sh: exit status 3.' }]);
    } finally {
      await context.close();
    }
  });
});
