/**
 * A session's checkpoints in the app, in real Chromium against a real agent in web mode:
 * "Checkpoint now" writes one into the image store and the list shows it; restoring it starts a
 * new session that shows the program's screen and whose memory is back at the checkpoint (while
 * the UI says what that means for files); deleting it removes it from the store; a failure is
 * shown with the agent's reason.
 */
import { mkdirSync, statSync, truncateSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageInfo } from '../../src-main/api/protocol.js';
import { ROOT, startDaemon, vos, type DaemonHandle } from '../helpers/agent-process.js';
import { launchChromium, type BrowserHandle } from '../helpers/browser.js';

const OUTPUT = join(ROOT, 'test-results');

let agent: DaemonHandle;
let chromium: BrowserHandle;
let url: string;

beforeAll(async () => {
  mkdirSync(OUTPUT, { recursive: true });
  agent = await startDaemon({ args: ['--name', 'checkpoint-ui', '--web'], env: { VOS_MDNS: '0', VOS_LISTEN: 'none' } });
  url = /web UI: (\S+)/.exec(agent.stdout())![1]!;
  chromium = await launchChromium();
});

afterAll(async () => {
  await chromium?.close();
  await agent?.stop();
});

const images = async (): Promise<ImageInfo[]> => JSON.parse((await vos(agent.home, ['images', '--json'])).stdout) as ImageInfo[];

describe('checkpoints in the app', () => {
  it('checkpoint now, listed, restored into a new session showing the program, deleted; errors with their reason', async () => {
    const run = await vos(agent.home, ['run', '-d', '--name', 'counted', '--', 'bash', '--norc', '--noprofile'], { PS1: 'cp$ ' });
    const id = run.stdout.trim();
    await vos(agent.home, ['send', id, 'x=remembered-value; echo marker-before-$((6*7))\\r']); // the output, not the command line, says marker-before-42
    const page = await chromium.browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      await page.goto(url);
      await page.getByTestId('connection-status').filter({ hasText: 'connected' }).waitFor();
      await page.locator(`[data-session-id="${id}"]`).first().click();
      const view = page.locator(`[data-testid="terminal-view"][data-session-id="${id}"]`);
      await view.locator('.xterm-rows').filter({ hasText: 'marker-before-42' }).waitFor();

      // Checkpoint now: the notice and the list say so, and the store has it.
      await page.getByTestId('checkpoints-toggle').click();
      const panel = page.getByTestId('checkpoints');
      await panel.getByText('No checkpoints of this session yet.').waitFor();
      await page.getByTestId('checkpoint-now').click();
      await page.getByTestId('checkpoint-notice').filter({ hasText: /Checkpoint written: [\d.]+ [KMG]?i?B/ }).waitFor({ timeout: 30_000 });
      const [image] = await images();
      expect(image).toMatchObject({ session: { id, name: 'counted' }, kind: 'manual', state: 'ok' });
      const row = page.locator(`[data-testid="checkpoint-row"][data-image-id="${image!.id}"]`);
      await row.waitFor();
      expect(await row.textContent()).toContain('by hand');
      expect(await page.getByTestId('checkpoints-toggle').textContent()).toContain('(1)');

      // The program moves on after the checkpoint.
      await page.locator('.xterm-helper-textarea').focus();
      await page.keyboard.type('x=changed-later; clear; echo changed-$((6*7))');
      await page.keyboard.press('Enter');
      const changed = await vos(agent.home, ['wait', id, '--text', '^changed-42$']);
      expect(changed.code, changed.stderr).toBe(0);

      // Restore: the confirmation says what an older checkpoint means, then a new session runs.
      await row.getByTestId('restore').click();
      const confirm = page.getByTestId('restore-confirm');
      expect(await confirm.textContent()).toMatch(/memory and screen go back.*Files it wrote since then are not rolled back/s);
      await confirm.getByLabel('Name of the new session').fill('counted-again');
      await page.getByTestId('restore-go').click();
      const restoredView = page.locator('[data-testid="terminal-view"]').filter({ hasText: 'counted-again' });
      await restoredView.waitFor({ timeout: 30_000 });
      const rid = (await restoredView.getAttribute('data-session-id'))!;
      expect(rid).not.toBe(id);
      // The program's screen as it was at the checkpoint, and its memory from then.
      await restoredView.locator('.xterm-rows').filter({ hasText: 'marker-before' }).waitFor();
      expect(await restoredView.getByTestId('restored-note').textContent()).toContain(image!.id);
      await page.locator('.xterm-helper-textarea').focus();
      await page.keyboard.type('echo "x is $x"');
      await page.keyboard.press('Enter');
      await restoredView.locator('.xterm-rows').filter({ hasText: 'x is remembered-value' }).waitFor();
      const ls = JSON.parse((await vos(agent.home, ['ls', '--json'])).stdout) as Array<{ id: string; name: string; state: string; restoredFrom: string | null }>;
      expect(ls.find((s) => s.id === rid)).toMatchObject({ name: 'counted-again', state: 'running' });
      await page.screenshot({ path: join(OUTPUT, 'checkpoints-restored.png') });

      // Back to the original: delete its checkpoint (asked once more), and it is gone from the store.
      await page.locator(`[data-session-id="${id}"]`).first().click();
      await row.waitFor();
      await page.screenshot({ path: join(OUTPUT, 'checkpoints-list.png') });
      await row.getByTestId('delete').click();
      await row.getByTestId('delete-confirm').click();
      await row.waitFor({ state: 'detached' });
      expect(await images()).toEqual([]);

      // A failure shows the agent's reason: a checkpoint deleted elsewhere while listed here.
      await page.getByTestId('checkpoint-now').click();
      await page.getByTestId('checkpoint-notice').waitFor({ timeout: 30_000 });
      const [second] = await images();
      const secondRow = page.locator(`[data-testid="checkpoint-row"][data-image-id="${second!.id}"]`);
      await secondRow.waitFor();
      expect((await vos(agent.home, ['images', 'rm', second!.id])).code).toBe(0);
      await secondRow.getByTestId('delete').click();
      await secondRow.getByTestId('delete-confirm').click();
      const error = page.getByTestId('checkpoint-error');
      await error.waitFor();
      expect(await error.textContent()).toMatch(new RegExp(`^Deleting failed: .*${second!.id}`));
      await secondRow.waitFor({ state: 'detached' }); // the list was reloaded

      // A damaged checkpoint says why and cannot be restored.
      await page.getByTestId('checkpoint-now').click();
      await page.getByTestId('checkpoint-notice').waitFor({ timeout: 30_000 });
      const [third] = await images();
      truncateSync(third!.file, statSync(third!.file).size - 100);
      await page.getByTestId('checkpoints-toggle').click(); // closed
      await page.getByTestId('checkpoints-toggle').click(); // open again: reloaded
      const thirdRow = page.locator(`[data-testid="checkpoint-row"][data-image-id="${third!.id}"]`);
      await thirdRow.getByText(/^Damaged: /).waitFor();
      expect(await thirdRow.getByTestId('restore').isDisabled()).toBe(true);
    } finally {
      await page.close();
    }
  });

  it('says what a restore of it will not carry: a connection to outside the session', async () => {
    const server = createServer((socket) => socket.on('error', () => {}));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const page = await chromium.browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      const run = await vos(agent.home, ['run', '-d', '--name', 'connected', '--', 'bash', '--norc', '--noprofile'], { PS1: 'cn$ ' });
      const id = run.stdout.trim();
      await vos(agent.home, ['send', id, `exec 3<>/dev/tcp/127.0.0.1/${port}; echo connected-$((40+2))\\r`]); // the output, not the command line, says connected-42
      await page.goto(url);
      await page.getByTestId('connection-status').filter({ hasText: 'connected' }).waitFor();
      await page.locator(`[data-session-id="${id}"]`).first().click();
      await page.locator(`[data-testid="terminal-view"][data-session-id="${id}"] .xterm-rows`).filter({ hasText: 'connected-42' }).waitFor();
      await page.getByTestId('checkpoints-toggle').click();
      await page.getByTestId('checkpoint-now').click();
      await page.getByTestId('checkpoint-notice').filter({ hasText: /Checkpoint written/ }).waitFor({ timeout: 30_000 });
      const warning = await page.getByTestId('checkpoint-warning').textContent();
      expect(warning).toMatch(/^A restore of it will not carry: /);
      expect(warning).toContain(`127.0.0.1:${port}`);
      await vos(agent.home, ['kill', id]);
    } finally {
      await page.close();
      server.close();
    }
  });
});
