/**
 * "Move anyway" in the app: a move refused only because a file the session keeps open has other
 * content on the target (a REPL's history, which node rewrites whole) offers to move anyway,
 * letting the program use the target's file as it is; the move then happens and the program
 * goes on there. Two real agents on this machine, paired, the target in a mount namespace of its
 * own whose history file differs; real Chromium on the source's web UI. Root only.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PeerInfo, SessionInfo } from '../../src-main/api/protocol.js';
import { startDaemon, vos, waitFor, type DaemonHandle } from '../helpers/agent-process.js';
import { launchChromium, type BrowserHandle } from '../helpers/browser.js';

const skip = process.getuid?.() !== 0 ? 'needs root (the target agent runs in a mount namespace of its own)' : null;
if (skip) console.log(`test/browser/move-anyway-ui.test.ts skipped: ${skip}`);

const peersOf = async (d: DaemonHandle): Promise<PeerInfo[]> => JSON.parse((await vos(d.home, ['peers', '--json'])).stdout) as PeerInfo[];
const sessionsOf = async (d: DaemonHandle): Promise<SessionInfo[]> => JSON.parse((await vos(d.home, ['ls', '--json'])).stdout) as SessionInfo[];

/** Pairs `a` (which asks) with `b` through the CLI, as two users at their machines would. */
async function pair(a: DaemonHandle, aName: string, b: DaemonHandle, bName: string): Promise<void> {
  const listen = (await (await b.connect()).ready()).listen!;
  const added = await vos(a.home, ['peer', 'add', listen]);
  expect(added.code, added.stderr).toBe(0);
  await waitFor(`${aName} to see ${bName}`, async () => (await peersOf(a)).some((p) => p.name === bName && p.online), 20_000, 100);
  const asking = vos(a.home, ['pair', bName, '--timeout', '20']);
  const request = await waitFor(`${bName} to hear ${aName}'s request`, async () => (await peersOf(b)).find((p) => p.name === aName && p.pairing?.direction === 'incoming'), 20_000, 100);
  const code = request.pairing!.code;
  const accepting = vos(b.home, ['pair', 'accept', aName, '--code', code, '--timeout', '20']);
  await waitFor(`${bName} to accept`, async () => (await peersOf(b)).some((p) => p.name === aName && (p.paired || p.pairing?.confirmed === true)), 20_000, 100);
  const confirmed = await vos(a.home, ['pair', 'confirm', bName, '--code', code]);
  expect(confirmed.code, confirmed.stderr).toBe(0);
  expect((await accepting).code).toBe(0);
  expect((await asking).code).toBe(0);
}

describe.skipIf(skip !== null)('move anyway', () => {
  let alpha: DaemonHandle;
  let beta: DaemonHandle;
  let chromium: BrowserHandle;
  let dir: string;
  let history: string;

  beforeAll(async () => {
    dir = mkdtempSync('/tmp/vos-anyway-');
    history = join(dir, 'history');
    writeFileSync(history, '');
    alpha = await startDaemon({ args: ['--name', 'alpha', '--web'] });
    // beta's history in that place is its own.
    beta = await startDaemon({ args: ['--name', 'beta'], mountPrelude: `mount -t tmpfs -o size=1m none ${dir} && echo 'beta was here' > ${history}` });
    chromium = await launchChromium();
    await pair(alpha, 'alpha', beta, 'beta');
  }, 90_000);

  afterAll(async () => {
    await chromium?.close();
    await alpha?.stop();
    await beta?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a move refused for a file that differs there offers "Move anyway", which moves it using that file as it is', async () => {
    const run = await vos(alpha.home, ['run', '-d', '--name', 'repl', '--', process.execPath], { NODE_REPL_HISTORY: history });
    const id = run.stdout.trim();
    await vos(alpha.home, ['wait', id, '--text', '^> ?$']);
    await vos(alpha.home, ['send', id, 'let x = 21\\r']);
    await vos(alpha.home, ['wait', id, '--text', '^undefined$']);
    await waitFor('node to write its history', () => readFileSync(history, 'utf8').includes('let x = 21'));
    const url = /web UI: (\S+)/.exec(alpha.stdout())![1]!;
    const page = await chromium.browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      await page.goto(url);
      const row = page.locator(`.session-row[data-session-id="${id}"]`);
      await row.dblclick();
      await page.getByTestId('move-dialog').waitFor();
      await page.locator('[data-testid="move-target"][data-peer="beta"]').click();
      // Refused, saying why, with the way on.
      const why = page.getByTestId('move-anyway-why');
      await why.waitFor();
      expect(await why.textContent()).toContain(`${history} has other content on beta`);
      expect(await page.getByTestId('move-status').textContent()).toContain(`${history} differs here`);
      expect((await sessionsOf(alpha)).find((s) => s.id === id)?.state).toBe('running');
      await page.getByTestId('move-anyway').click();
      await page
        .getByTestId('move-status')
        .filter({ hasText: /as it is here, as asked/ })
        .waitFor({ timeout: 60_000 })
        .catch(async (err: unknown) => {
          const status = await page.getByTestId('move-status').textContent().catch(String);
          const tail = (text: string): string => text.split('\n').slice(-25).join('\n');
          throw new Error(`${(err as Error).message}\n--- status ---\n${status}\n--- alpha ---\n${tail(alpha.stdout())}\n--- beta ---\n${tail(beta.stdout())}`);
        });
    } finally {
      await page.close();
    }
    // It runs on beta, with its memory, and uses beta's history.
    const there = await waitFor('the session on beta', async () => (await sessionsOf(beta)).find((s) => s.name === 'repl' && s.state === 'running'), 20_000);
    await vos(beta.home, ['send', there.id, 'x * 2\\r']);
    const answered = await vos(beta.home, ['wait', there.id, '--text', '^42$']);
    expect(answered.code, answered.stderr).toBe(0);
    expect(readFileSync(history, 'utf8')).toContain('let x = 21'); // alpha's own history is alpha's
  }, 120_000);
});
