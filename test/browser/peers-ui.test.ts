/**
 * The app's machines panel in real Chromium, with two real agents linked over loopback: adding
 * a machine by address, pairing from the UI (the code on both sides, the other side's window
 * asking to accept, this side's asking whether the codes match), the other machine's sessions grouped under its name, and a remote session
 * opened in the terminal view that takes typing.
 */
import { mkdirSync } from 'node:fs';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, startDaemon, vos, type DaemonHandle } from '../helpers/agent-process.js';
import { launchChromium, type BrowserHandle } from '../helpers/browser.js';

const OUTPUT = join(ROOT, 'test-results');

let alpha: DaemonHandle;
let beta: DaemonHandle;
let chromium: BrowserHandle;
/** A server outside every session (it echoes), for a connection a move keeps open and relays. */
let server: Server;
/** A UDP socket outside every session, for a connected socket a move cannot carry. */
let udp: UdpSocket;
const outside = { port: 0, udpPort: 0 };

beforeAll(async () => {
  server = createServer((socket) => {
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  outside.port = (server.address() as AddressInfo).port;
  udp = createSocket('udp4');
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
  outside.udpPort = udp.address().port;
  mkdirSync(OUTPUT, { recursive: true });
  // Loopback only, no mDNS (test/setup-env.ts): the machine is added by address.
  alpha = await startDaemon({ args: ['--name', 'alpha', '--web'] });
  beta = await startDaemon({ args: ['--name', 'beta', '--web'] });
  chromium = await launchChromium();
});

afterAll(async () => {
  await chromium?.close();
  await alpha?.stop();
  await beta?.stop();
  server?.close();
  udp?.close();
});

const webUrl = (d: DaemonHandle): string => /web UI: (\S+)/.exec(d.stdout())![1]!;

describe('machines in the app', () => {
  it('adds a machine, pairs with it from both windows, and opens its session', async () => {
    const betaInfo = await (await beta.connect()).ready();
    const a = await chromium.browser.newPage({ viewport: { width: 1280, height: 800 } });
    const b = await chromium.browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      await a.goto(webUrl(alpha));
      await b.goto(webUrl(beta));
      await a.getByTestId('connection-status').filter({ hasText: 'connected' }).waitFor();
      await b.getByTestId('connection-status').filter({ hasText: 'connected' }).waitFor();

      await a.getByTestId('peer-address').fill(betaInfo.listen!);
      await a.getByTestId('peer-add').click();
      const row = a.locator('[data-peer="beta"]');
      await row.waitFor();
      await expect.poll(() => row.textContent()).toContain('Linux');

      await row.getByTestId('pair').click();
      const code = (await a.getByTestId('pair-code').locator('strong').textContent())!;
      expect(code).toMatch(/^\d{6}$/);
      // beta's window asks, with the same code.
      const dialog = b.getByTestId('pair-dialog');
      await dialog.waitFor();
      expect(await dialog.textContent()).toContain('alpha wants to pair with this machine');
      expect(await b.getByTestId('pair-dialog-code').textContent()).toBe(code);
      // Both show the same two short ids beside the code (the one that asked first).
      const ids = (await a.getByTestId('pair-ids').textContent())!;
      expect(ids).toMatch(/^[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4} → [A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$/);
      expect(await b.getByTestId('pair-dialog-ids').textContent()).toBe(ids);
      await b.screenshot({ path: join(OUTPUT, 'web-ui-pairing.png') });
      await b.getByTestId('pair-accept').click();
      await dialog.waitFor({ state: 'detached' });
      // Accepted there, not paired yet: alpha's user confirms that beta shows the same code.
      await b.locator('[data-peer="alpha"] [data-testid="pair-state"]').filter({ hasText: 'waiting for alpha' }).waitFor();
      const confirm = a.locator('[data-testid="pair-dialog"][data-direction="outgoing"]');
      await confirm.waitFor();
      expect(await a.getByTestId('pair-dialog-code').textContent()).toBe(code);
      expect(await a.getByTestId('pair-dialog-ids').textContent()).toBe(ids);
      await a.getByTestId('pair-dialog-peer-confirmed').waitFor();
      expect(await b.locator('[data-peer="alpha"] .badge.paired').count()).toBe(0);
      await a.getByTestId('pair-match').click();
      await confirm.waitFor({ state: 'detached' });
      await row.locator('.badge.paired').waitFor();
      await b.locator('[data-peer="alpha"] .badge.paired').waitFor();

      // A session on beta shows up in alpha's window, under beta.
      const id = (await vos(beta.home, ['run', '-d', '--name', 'on-beta', '--', 'bash', '--norc', '--noprofile'], { PS1: 'beta$ ' })).stdout.trim();
      const remoteRow = a.locator(`[data-session-id^="${id}@"]`);
      await remoteRow.waitFor();
      await a.locator('.machine-heading[data-machine="beta"]').waitFor();
      await remoteRow.click();
      await a.getByTestId('terminal-view').filter({ hasText: 'on beta' }).waitFor();
      await a.locator('.xterm-rows').filter({ hasText: 'beta$' }).waitFor();
      await a.locator('.xterm-helper-textarea').focus();
      await a.keyboard.type('echo typed-in-alpha-$((6*7))');
      await a.keyboard.press('Enter');
      await a.locator('.xterm-rows').filter({ hasText: 'typed-in-alpha-42' }).waitFor();
      const screen = await vos(beta.home, ['screen', id]);
      expect(screen.stdout).toMatch(/^typed-in-alpha-42$/m);
      await a.screenshot({ path: join(OUTPUT, 'web-ui-remote-session.png') });
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('moves a session to the paired machine by double-click; the terminal follows it', async () => {
    const a = await chromium.browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      await a.goto(webUrl(alpha));
      await a.locator('[data-peer="beta"] .badge.paired').waitFor(); // paired by the test above
      const id = (await vos(alpha.home, ['run', '-d', '--name', 'mover', '--', 'bash', '--norc', '--noprofile'], { PS1: 'moving$ ' })).stdout.trim();
      // A connection to outside the session (this test's server): the move keeps it open here
      // and relays it; a connected UDP socket it cannot carry: it says so before the stop.
      await vos(alpha.home, ['send', id, `exec 3<>/dev/tcp/127.0.0.1/${outside.port} 4<>/dev/udp/127.0.0.1/${outside.udpPort}\\r`]);
      await vos(alpha.home, ['send', id, 'echo before-the-move-$((6*7))\\r']); // the output, not the command line, says before-the-move-42
      const row = a.locator(`.session-row[data-session-id="${id}"]`);
      await row.click();
      await a.locator('.xterm-rows').filter({ hasText: 'before-the-move-42' }).waitFor();
      await row.dblclick();
      await a.getByTestId('move-dialog').waitFor();
      await a.locator('[data-testid="move-target"][data-peer="beta"]').click();
      await a.getByTestId('move-status').filter({ hasText: 'Moved.' }).waitFor({ timeout: 20_000 });
      expect(await a.getByTestId('move-warning').first().textContent()).toContain(`127.0.0.1:${outside.udpPort}`);
      expect(await a.getByTestId('move-note').textContent()).toContain(`Kept open where it was, and relayed: `);
      expect(await a.getByTestId('move-note').textContent()).toContain(`127.0.0.1:${outside.port}`);
      // Under the terminal, as long as it lasts: which machine keeps it.
      const kept = a.getByTestId('relayed-note');
      await kept.filter({ hasText: `127.0.0.1:${outside.port}: kept open by alpha` }).waitFor();
      await a.getByTestId('move-status').getByRole('button', { name: 'OK' }).click();
      // The view shows it on beta now, with its screen, and typing reaches it there.
      await a.getByTestId('terminal-view').filter({ hasText: 'on beta' }).waitFor();
      await a.locator('.xterm-rows').filter({ hasText: 'before-the-move' }).waitFor();
      await a.locator('.xterm-helper-textarea').focus();
      await a.keyboard.type('echo after-the-move-$((6*7))');
      await a.keyboard.press('Enter');
      await a.locator('.xterm-rows').filter({ hasText: 'after-the-move-42' }).waitFor();
      // The kept connection still works from there: the server echoes what it is sent.
      await a.keyboard.type('echo relayed-$((6*7)) >&3; read -t 10 line <&3; echo "echoed $line"');
      await a.keyboard.press('Enter');
      await a.locator('.xterm-rows').filter({ hasText: 'echoed relayed-42' }).waitFor();
      const there = JSON.parse((await vos(beta.home, ['ls', '--json'])).stdout) as Array<{ id: string; name: string }>;
      const moved = there.find((s) => s.name === 'mover')!;
      expect((await vos(beta.home, ['screen', moved.id])).stdout).toMatch(/^after-the-move-42$/m);
      expect(JSON.parse((await vos(alpha.home, ['ls', '--json'])).stdout).find((s: { name: string }) => s.name === 'mover')).toBeUndefined();
      await a.screenshot({ path: join(OUTPUT, 'web-ui-moved-session.png') });

      // And back: double-click it under beta, pick this machine; the view follows it home.
      const away = a.locator(`.session-row[data-session-id^="${moved.id}@"]`);
      await away.dblclick();
      await a.getByTestId('move-dialog').waitFor();
      expect(await a.locator('[data-testid="move-target"][data-peer="beta"]').count()).toBe(0); // not where it runs
      await a.locator('[data-testid="move-target"][data-peer="alpha"]').click();
      await a.getByTestId('move-status').filter({ hasText: 'Moved.' }).waitFor({ timeout: 20_000 });
      await a.locator('.xterm-helper-textarea').focus();
      await a.keyboard.type('echo home-again-$((6*7))');
      await a.keyboard.press('Enter');
      await a.locator('.xterm-rows').filter({ hasText: 'home-again-42' }).waitFor();
      const home = JSON.parse((await vos(alpha.home, ['ls', '--json'])).stdout) as Array<{ id: string; name: string }>;
      expect((await vos(alpha.home, ['screen', home.find((s) => s.name === 'mover')!.id])).stdout).toMatch(/^home-again-42$/m);
    } finally {
      await a.close();
    }
  });

  it('the move dialog names a paired machine that is away, with the reason, and cannot pick it', async () => {
    const a = await chromium.browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      await a.goto(webUrl(alpha));
      await a.locator('[data-peer="beta"] .badge.paired').waitFor(); // paired by the tests above
      const id = (await vos(alpha.home, ['run', '-d', '--name', 'stays', '--', 'sleep', '300'])).stdout.trim();
      await beta.stop({ keepHome: true }); // its goodbye: alpha knows at once
      const row = a.locator(`.session-row[data-session-id="${id}"]`);
      await row.dblclick();
      await a.getByTestId('move-dialog').waitFor();
      const away = a.locator('[data-testid="move-unreachable"][data-peer="beta"]');
      await away.filter({ hasText: /offline: not seen since/ }).waitFor();
      expect(await away.isDisabled()).toBe(true);
      expect(await a.locator('[data-testid="move-target"][data-peer="beta"]').count()).toBe(0);
      await a.getByTestId('move-dialog').getByText('No paired machine can take it now').waitFor();
      await a.keyboard.press('Escape');
      await a.getByTestId('move-dialog').waitFor({ state: 'detached' });
    } finally {
      await a.close();
    }
  });
});
