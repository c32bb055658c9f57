/**
 * A session's checkpoint schedule in the app, in real Chromium against a real agent in web mode
 * with real pods: a custom period (the agent's shortest, 1 s) set from the UI runs, and the UI
 * shows the next run and the last result as they change; "Off" turns it off in the agent; a
 * program that cannot be checkpointed (a SysV message queue) shows its paused schedule with the
 * reason, and Resume tries it again (it pauses again, for the same reason).
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src-main/api/client.js';
import type { ScheduleInfo } from '../../src-main/api/protocol.js';
import { ROOT, startDaemon, vos, waitFor, type DaemonHandle } from '../helpers/agent-process.js';
import { launchChromium, type BrowserHandle } from '../helpers/browser.js';
import { fillTestPrograms } from '../helpers/test-programs.js';

const OUTPUT = join(ROOT, 'test-results');

let programs: string;
let agent: DaemonHandle;
let chromium: BrowserHandle;
let url: string;
/** A watcher of the agent's schedule.changed events, as the tray and the app get them. */
let watcher: ApiClient;
const events: ScheduleInfo[] = [];

beforeAll(async () => {
  mkdirSync(OUTPUT, { recursive: true });
  programs = mkdtempSync('/tmp/vos-programs-');
  chmodSync(programs, 0o755);
  fillTestPrograms(programs);
  agent = await startDaemon({ args: ['--name', 'schedule-ui', '--web'], env: { VOS_MDNS: '0', VOS_LISTEN: 'none' } });
  url = /web UI: (\S+)/.exec(agent.stdout())![1]!;
  watcher = await agent.connect();
  watcher.onEvent((e) => {
    if (e.event === 'schedule.changed') events.push(e.schedule);
  });
  await watcher.request('session.watch', {});
  chromium = await launchChromium();
});

afterAll(async () => {
  watcher?.close();
  await chromium?.close();
  await agent?.stop();
  if (programs) rmSync(programs, { recursive: true, force: true });
});

async function listed(id: string): Promise<ScheduleInfo> {
  const list = JSON.parse((await vos(agent.home, ['schedule', '--json'])).stdout) as { schedules: ScheduleInfo[] };
  return list.schedules.find((s) => s.session === id)!;
}

async function openSession(page: Page, id: string): Promise<void> {
  await page.goto(url);
  await page.getByTestId('connection-status').filter({ hasText: 'connected' }).waitFor();
  await page.locator(`[data-session-id="${id}"]`).first().click();
  await page.locator(`[data-testid="terminal-view"][data-session-id="${id}"]`).waitFor();
  await page.getByTestId('checkpoints-toggle').click();
}

/** The time of the last run the UI shows (0: none yet). */
async function shownRunAt(page: Page): Promise<number> {
  const last = page.getByTestId('schedule-last');
  return (await last.count()) ? Number(await last.getAttribute('data-at')) : 0;
}

describe('checkpoint schedules in the app', () => {
  it('a custom period set in the UI runs, next run and last result update live, and Off turns it off', async () => {
    const id = (await vos(agent.home, ['run', '-d', '--name', 'ticking', '--', join(programs, 'counter'), '100'])).stdout.trim();
    const page = await chromium.browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      await openSession(page, id);
      const control = page.locator(`[data-testid="schedule"][data-session-id="${id}"]`);
      // The shipped default for new sessions: every 15 minutes, keep 3.
      const period = control.getByTestId('schedule-period');
      await waitFor('the default period shown', async () => (await period.inputValue()) === String(15 * 60_000));
      expect(await control.getByTestId('schedule-keep').inputValue()).toBe('3');
      expect(await control.getByTestId('schedule-next').textContent()).toMatch(/Next run in 1[45]m\d\ds \(at \d\d:\d\d:\d\d\)/);

      // A typo is refused with how to write it, and nothing changes in the agent.
      await period.selectOption('custom');
      await control.getByTestId('schedule-custom').fill('every second');
      await control.getByTestId('schedule-custom-set').click();
      expect(await control.getByTestId('schedule-error').textContent()).toMatch(/is not a period: .* e\.g\. 30s/);
      expect(await listed(id)).toMatchObject({ everyMs: 15 * 60_000, keep: 3 });

      // Keep 2 and every second, from the UI.
      await control.getByTestId('schedule-keep').fill('2');
      await control.getByTestId('schedule-keep').dispatchEvent('change');
      await waitFor('keep 2 in the agent', async () => (await listed(id)).keep === 2, 10_000);
      await control.getByTestId('schedule-custom').fill('1s');
      await control.getByTestId('schedule-custom-set').click();
      await waitFor('every second in the agent', async () => (await listed(id)).everyMs === 1000, 10_000);
      expect(await listed(id)).toMatchObject({ everyMs: 1000, keep: 2, paused: null });
      expect(await period.inputValue()).toBe('custom');
      expect(await period.locator('option:checked').textContent()).toBe('1 second (custom)');

      // The last result appears and moves on by itself, run after run.
      const last = control.getByTestId('schedule-last');
      await last.waitFor({ timeout: 30_000 });
      const first = await shownRunAt(page);
      expect(await last.textContent()).toMatch(/^\s*Last run \d+s ago \(at \d\d:\d\d:\d\d\): ok, [\d.]+ (B|KiB|MiB)/);
      await waitFor('a later run shown', async () => (await shownRunAt(page)) > first, 30_000);
      const second = await shownRunAt(page);
      await waitFor('another later run shown', async () => (await shownRunAt(page)) > second, 30_000);
      expect(await last.textContent()).toMatch(/ok, [\d.]+ (B|KiB|MiB)/);
      expect(await control.getByTestId('schedule-next').textContent()).toMatch(/Next run (due now|in [0-2]s) \(at \d\d:\d\d:\d\d\)/); // a 1 s period; the clock ticks each second
      // The checkpoint list follows: the scheduled images are listed without a reload.
      await waitFor('scheduled images listed', async () => (await page.getByTestId('checkpoint-row').filter({ hasText: 'scheduled' }).count()) >= 1, 10_000);
      // What the UI shows is what the agent says.
      const agentLast = (await listed(id)).last!;
      expect(agentLast.ok).toBe(true);
      expect(agentLast.at).toBeGreaterThanOrEqual(second);
      await page.screenshot({ path: join(OUTPUT, 'schedule-running.png') });

      // Off, from the UI: the agent has no schedule for it, and the UI says so.
      await period.selectOption('off');
      await waitFor('the schedule off in the agent', async () => (await listed(id)).everyMs === null, 10_000);
      expect(await listed(id)).toMatchObject({ everyMs: null, nextRunAt: null });
      await control.getByTestId('schedule-next').filter({ hasText: 'No scheduled checkpoints.' }).waitFor();
      expect(await page.getByTestId('schedule-error').count()).toBe(0);
    } finally {
      await page.close();
      await vos(agent.home, ['kill', id]);
    }
  });

  it("a program that cannot be checkpointed: its paused schedule shows the reason, and Resume tries again", async () => {
    // A SysV message queue, which vOS cannot carry: every checkpoint of it is refused.
    const queue = `perl -e 'msgget(0, 0600) // die; sleep 1000' & exec ${join(programs, 'counter')} 200`;
    const id = (await vos(agent.home, ['run', '-d', '--name', 'queue', '--', 'sh', '-c', queue])).stdout.trim();
    expect((await vos(agent.home, ['wait', id, '--text', 'count=2$'])).code).toBe(0);
    const page = await chromium.browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      await openSession(page, id);
      const control = page.locator(`[data-testid="schedule"][data-session-id="${id}"]`);
      expect((await vos(agent.home, ['schedule', id, '--every', '1s', '--keep', '1'])).code).toBe(0);

      const paused = control.getByTestId('schedule-paused');
      await paused.waitFor({ timeout: 30_000 });
      const reason = (await listed(id)).paused!;
      expect(reason).toMatch(/SysV message queue/);
      expect(await paused.textContent()).toBe(`Paused: ${reason}`);
      // Said once: not also as a failed last run below it.
      expect(await control.getByTestId('schedule-last').count()).toBe(0);
      expect(await page.getByTestId('schedule-trouble').textContent()).toContain('paused');
      const pausedAt = events.filter((e) => e.session === id && e.paused !== null).at(-1)!.last!.at;
      await page.screenshot({ path: join(OUTPUT, 'schedule-paused.png') });

      // Resume: the agent takes it up again (not paused), tries once more and pauses again.
      const before = events.length;
      await control.getByTestId('schedule-resume').click();
      await waitFor('the schedule resumed', () => events.slice(before).some((e) => e.session === id && e.paused === null && e.everyMs === 1000), 10_000);
      await waitFor(
        'the schedule paused again after another try',
        () => events.slice(before).some((e) => e.session === id && e.paused !== null && e.last!.at > pausedAt),
        30_000,
      );
      await waitFor('the UI showing the pause again', async () => (await paused.count()) === 1 && (await paused.textContent()) === `Paused: ${reason}`, 10_000);
      // The program ran on throughout.
      expect((await vos(agent.home, ['wait', id, '--text', 'count=\\d*[1-9]\\d$', '--timeout', '20'])).code).toBe(0);
    } finally {
      await page.close();
      await vos(agent.home, ['kill', id]);
    }
  });
});
