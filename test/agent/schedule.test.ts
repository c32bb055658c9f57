/**
 * Scheduled checkpoints (issue 9 part 2), with real agents and real pods: a schedule with a short
 * period fires and writes 'scheduled' images into the store, retention keeps N, off stops it, the
 * default applies to new sessions, schedules survive an agent restart, and a program that cannot
 * be checkpointed (a SysV message queue: vOS cannot carry one) pauses its schedule once,
 * with the reason, instead of failing every period. "Does not happen" is shown against another
 * session's runs (a later event), never by sleeping and hoping.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src-main/api/client.js';
import type { ApiEvent, ImageInfo, ScheduleInfo } from '../../src-main/api/protocol.js';
import { UNPRIVILEGED, endHosts, startDaemon, waitFor, type DaemonHandle } from '../helpers/agent-process.js';
import { fillTestPrograms } from '../helpers/test-programs.js';

let programs: string;

beforeAll(() => {
  programs = mkdtempSync('/tmp/vos-programs-');
  chmodSync(programs, 0o755);
  fillTestPrograms(programs);
});

afterAll(() => {
  rmSync(programs, { recursive: true, force: true });
});

const isRoot = process.getuid?.() === 0;
const runAs = isRoot ? [{ who: 'root', user: null }, { who: 'nobody', user: UNPRIVILEGED }] : [{ who: 'this user', user: null }];
if (!isRoot) console.log('schedule tests run as the current user only (not root: no second user to run as)');

describe.each(runAs)('scheduled checkpoints (as $who)', ({ user }) => {
  const daemons: DaemonHandle[] = [];
  const homes: string[] = [];

  afterEach(async () => {
    await Promise.all(daemons.splice(0).map((d) => d.stop({ keepHome: true })));
    for (const h of homes.splice(0)) {
      await endHosts(h);
      rmSync(h, { recursive: true, force: true });
    }
  });

  async function daemon(home?: string): Promise<DaemonHandle> {
    const d = await startDaemon({ ...(home ? { home } : {}), ...(user ? { asUser: user } : {}), env: { VOS_MDNS: '0', VOS_LISTEN: 'none' } });
    daemons.push(d);
    if (!homes.includes(d.home)) homes.push(d.home);
    return d;
  }

  /** A client that records every schedule.changed event. */
  async function watcher(d: DaemonHandle): Promise<{ client: ApiClient; events: ScheduleInfo[] }> {
    const client = await d.connect();
    const events: ScheduleInfo[] = [];
    client.onEvent((e: ApiEvent) => {
      if (e.event === 'schedule.changed') events.push(e.schedule);
    });
    await client.request('session.watch', {});
    return { client, events };
  }

  async function run(client: ApiClient, home: string, command: string, args: string[] = []): Promise<string> {
    const env = { ...(process.env as Record<string, string>), HOME: home };
    return (await client.request('session.create', { command, args, env, cwd: home })).id;
  }

  /**
   * Retention keeps the newest `keep` images as restore points, and the older images those build
   * on (incremental ones need their parents): returns the restore points, after checking that
   * every other image listed is such a parent.
   */
  function restorePoints(images: ImageInfo[], keep: number): ImageInfo[] {
    const newest = [...images].sort((x, y) => y.time - x.time).slice(0, keep);
    const needed = new Set<string>();
    for (const image of newest) {
      for (let parent = image.parent; parent !== null; ) {
        needed.add(parent);
        parent = images.find((j) => j.id === parent)?.parent ?? null;
      }
    }
    const others = images.filter((i) => !newest.includes(i));
    expect(others.filter((i) => !needed.has(i.id)).map((i) => i.id)).toEqual([]);
    return newest;
  }

  /** The distinct successful runs of a session the events told of, in order. */
  const okRuns = (events: ScheduleInfo[], id: string): number[] => [
    ...new Set(events.filter((e) => e.session === id && e.last?.ok).map((e) => e.last!.at)),
  ];

  it('fires with a short period, writes scheduled images, keeps N, and off stops it', async () => {
    const d = await daemon();
    const { client, events } = await watcher(d);
    const a = await run(client, d.home, join(programs, 'counter'), ['100']);
    const b = await run(client, d.home, join(programs, 'counter'), ['100']);
    const set = await client.request('schedule.set', { session: a, everyMs: 1000, keep: 2 });
    expect(set).toMatchObject({ session: a, everyMs: 1000, keep: 2, paused: null });
    expect(set.nextRunAt).toBeGreaterThan(Date.now() - 1000);

    await waitFor('three scheduled checkpoints of the session', () => okRuns(events, a).length >= 3, 30_000);
    const last = events.filter((e) => e.session === a && e.last?.ok).at(-1)!.last!;
    expect(last.image).toMatch(/^[0-9a-f]{8}$/);
    expect(last.bytes).toBeGreaterThan(0);
    // A whole image says why once: the first run (nothing to build on) gives its reason; a later
    // whole image for the same reason (no write tracking here, say) does not repeat it.
    const runs = [...new Map(events.filter((e) => e.session === a && e.last?.ok).map((e) => [e.last!.at, e.last!])).values()];
    expect(runs[0]).toMatchObject({ incremental: false, fullReason: expect.any(String) });
    let said: string | null = null;
    for (const r of runs) {
      if (r.incremental) said = null;
      else if (r.fullReason !== undefined) {
        expect(r.fullReason).not.toBe(said);
        said = r.fullReason;
      } else expect(said).not.toBeNull(); // whole for the reason said before
    }
    const images = await client.request('image.list', { session: a });
    expect(images.every((i) => i.kind === 'scheduled' && i.state === 'ok')).toBe(true);
    // Retention: the newest two, and only the parents they build on besides.
    const kept = restorePoints(images, 2);
    expect(kept.length).toBe(2);
    expect(kept.map((i) => i.id)).toContain(last.image);

    const off = await client.request('schedule.off', { session: a });
    expect(off).toMatchObject({ everyMs: null, nextRunAt: null });
    const runsWhenOff = okRuns(events, a).length;
    const imagesWhenOff = (await client.request('image.list', { session: a })).map((i) => i.id).sort();
    // While the other session is checkpointed three times, the one turned off is not.
    await client.request('schedule.set', { session: b, everyMs: 1000, keep: 1 });
    await waitFor('three checkpoints of the other session', () => okRuns(events, b).length >= 3, 30_000);
    expect(okRuns(events, a).length).toBe(runsWhenOff);
    expect((await client.request('image.list', { session: a })).map((i) => i.id).sort()).toEqual(imagesWhenOff);
    expect(restorePoints(await client.request('image.list', { session: b }), 1).length).toBe(1);
    // The session ran on throughout.
    await client.request('session.wait', { id: a, pattern: 'count=\\d*[1-9]\\d$', timeoutMs: 20_000 });
  });

  it('where write tracking is unavailable, writes whole images and says why once, not every period', async () => {
    const d = await daemon();
    const { client, events } = await watcher(d);
    const env = { ...(process.env as Record<string, string>), HOME: d.home, VOS_TEST_NO_DIRTY_TRACKING: '1' };
    const id = (await client.request('session.create', { command: join(programs, 'counter'), args: ['100'], env, cwd: d.home })).id;
    await client.request('schedule.set', { session: id, everyMs: 1000, keep: 2 });
    await waitFor('three scheduled checkpoints', () => okRuns(events, id).length >= 3, 30_000);
    const runs = [...new Map(events.filter((e) => e.session === id && e.last?.ok).map((e) => [e.last!.at, e.last!])).values()];
    expect(runs.every((r) => r.incremental === false)).toBe(true);
    expect(runs[0]!.fullReason).toMatch(/dirty-page tracking is turned off/);
    expect(runs.slice(1).map((r) => r.fullReason)).toEqual(runs.slice(1).map(() => undefined));
    // The list says the same: the reason is no longer news.
    const listed = (await client.request('schedule.list', {})).schedules.find((s) => s.session === id)!;
    expect(listed.last).toMatchObject({ ok: true, incremental: false });
    expect(listed.last!.fullReason).toBeUndefined();
  });

  it('gives the default to new sessions, refuses remote and unknown sessions, and forgets an ended session', async () => {
    const d = await daemon();
    const { client, events } = await watcher(d);
    expect((await client.request('schedule.list', {})).default).toEqual({ everyMs: 15 * 60 * 1000, keep: 3 });
    const before = await run(client, d.home, join(programs, 'counter'), ['100']);
    expect(await client.request('schedule.default', { everyMs: 1000, keep: 1 })).toEqual({ everyMs: 1000, keep: 1 });
    const fresh = await run(client, d.home, join(programs, 'counter'), ['100']);
    await waitFor('a scheduled checkpoint of the new session', () => okRuns(events, fresh).length >= 2, 30_000);
    const list = await client.request('schedule.list', {});
    expect(list.schedules.find((s) => s.session === fresh)).toMatchObject({ everyMs: 1000, keep: 1 });
    // A session there before the change keeps its schedule (the shipped default).
    expect(list.schedules.find((s) => s.session === before)).toMatchObject({ everyMs: 15 * 60 * 1000, keep: 3, last: null });
    expect(restorePoints(await client.request('image.list', { session: fresh }), 1).length).toBe(1);

    await expect(client.request('schedule.set', { session: `${fresh}@somewhere`, everyMs: 1000, keep: 1 })).rejects.toMatchObject({
      code: 'invalid_params',
      message: expect.stringMatching(/another machine/),
    });
    await expect(client.request('schedule.set', { session: 'nosuch', everyMs: 1000, keep: 1 })).rejects.toMatchObject({ code: 'unknown_session' });
    await expect(client.request('schedule.set', { session: fresh, everyMs: 999, keep: 1 })).rejects.toMatchObject({ code: 'invalid_params' });
    await expect(client.request('schedule.default', { everyMs: 1000, off: true })).rejects.toMatchObject({ code: 'invalid_params' });

    expect(await client.request('schedule.default', { off: true })).toEqual({ everyMs: null, keep: 1 });
    const none = await run(client, d.home, join(programs, 'counter'), ['100']);
    expect((await client.request('schedule.list', {})).schedules.find((s) => s.session === none)).toMatchObject({ everyMs: null, nextRunAt: null });

    // An ended session's schedule goes away, in the list, the file and as an event.
    await client.request('session.kill', { id: fresh, signal: 'KILL' });
    await waitFor('the schedule of the ended session to go', () => events.some((e) => e.session === fresh && e.everyMs === null), 10_000);
    expect((await client.request('schedule.list', {})).schedules.map((s) => s.session)).not.toContain(fresh);
    const file = JSON.parse(readFileSync(join(d.home, 'schedules.json'), 'utf8')) as { sessions: Record<string, unknown> };
    expect(Object.keys(file.sessions)).not.toContain(fresh);
    expect(Object.keys(file.sessions)).toContain(none);
  });

  it('goes on after the agent restarts, with the default and the schedules it had', async () => {
    const first = await daemon();
    const { client, events } = await watcher(first);
    const id = await run(client, first.home, join(programs, 'counter'), ['100']);
    const other = await run(client, first.home, join(programs, 'counter'), ['100']);
    await client.request('schedule.set', { session: id, everyMs: 1000, keep: 2 });
    await client.request('schedule.off', { session: other });
    await client.request('schedule.default', { everyMs: 3_600_000, keep: 5 });
    await waitFor('a scheduled checkpoint', () => okRuns(events, id).length >= 1, 30_000);
    await first.stop({ keepHome: true });
    daemons.splice(daemons.indexOf(first), 1);

    const restartedAt = Date.now();
    const second = await daemon(first.home);
    const w = await watcher(second);
    const list = await w.client.request('schedule.list', {});
    expect(list.default).toEqual({ everyMs: 3_600_000, keep: 5 });
    expect(list.schedules.find((s) => s.session === id)).toMatchObject({ everyMs: 1000, keep: 2, paused: null });
    expect(list.schedules.find((s) => s.session === id)!.last?.ok).toBe(true);
    expect(list.schedules.find((s) => s.session === other)).toMatchObject({ everyMs: null });
    await waitFor('a scheduled checkpoint by the new agent', () => okRuns(w.events, id).some((at) => at >= restartedAt), 30_000);
    const images = await w.client.request('image.list', { session: id });
    expect(images.length).toBe(2);
    expect(images.every((i) => i.kind === 'scheduled')).toBe(true);
  });

  it('pauses the schedule of a program that cannot be checkpointed, once, with the reason; schedule.set resumes it', async () => {
    const d = await daemon();
    const { client, events } = await watcher(d);
    // A SysV message queue, which vOS cannot carry: every checkpoint of it is refused.
    const stat = await run(client, d.home, 'sh', ['-c', `perl -e 'msgget(0, 0600) // die; sleep 1000' & exec ${join(programs, 'counter')} 200`]);
    const good = await run(client, d.home, join(programs, 'counter'), ['100']);
    await client.request('session.wait', { id: stat, pattern: 'count=2$', timeoutMs: 10_000 });
    await client.request('schedule.set', { session: stat, everyMs: 1000, keep: 2 });
    await client.request('schedule.set', { session: good, everyMs: 1000, keep: 1 });

    const paused = await waitFor('the schedule to pause', () => events.find((e) => e.session === stat && e.paused !== null), 30_000);
    expect(paused.paused).toMatch(/the pod has a SysV message queue/);
    expect(paused.last).toMatchObject({ ok: false, error: paused.paused });
    expect(paused.nextRunAt).toBeNull();
    const goodRunsAtPause = okRuns(events, good).length;
    const statEventsAtPause = events.filter((e) => e.session === stat).length;
    // Three periods of the other session later, the paused one has not been tried again.
    await waitFor('three more runs of the other session', () => okRuns(events, good).length >= goodRunsAtPause + 3, 30_000);
    expect(events.filter((e) => e.session === stat).length).toBe(statEventsAtPause);
    const listed = (await client.request('schedule.list', {})).schedules.find((s) => s.session === stat)!;
    expect(listed).toMatchObject({ paused: paused.paused, nextRunAt: null, last: paused.last });
    expect(await client.request('image.list', { session: stat })).toEqual([]);
    await client.request('session.wait', { id: stat, pattern: 'count=\\d*[1-9]\\d$', timeoutMs: 20_000 }); // still counting

    // Setting it again resumes it: tried once more, and paused again for the same reason.
    const resumed = await client.request('schedule.set', { session: stat, everyMs: 1000, keep: 2 });
    expect(resumed).toMatchObject({ paused: null });
    expect(resumed.nextRunAt).not.toBeNull();
    await waitFor('the schedule to pause again', () => events.some((e) => e.session === stat && e.paused !== null && e.last!.at > paused.last!.at), 30_000);
  });
});
