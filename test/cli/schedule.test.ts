/**
 * `vos schedule` end to end (a real agent, a real session in a pod) and its duration syntax.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ScheduleDefault, ScheduleInfo } from '../../src-main/api/protocol.js';
import { formatPeriod, parseDuration } from '../../src-main/cli/commands/schedule.js';
import { startDaemon, vos, waitFor, type DaemonHandle } from '../helpers/agent-process.js';

const daemons: DaemonHandle[] = [];

afterEach(async () => {
  await Promise.all(daemons.splice(0).map((d) => d.stop()));
});

type ScheduleList = { default: ScheduleDefault; schedules: ScheduleInfo[] };

describe('vos schedule', () => {
  it('reads and writes durations', () => {
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('15m')).toBe(900_000);
    expect(parseDuration('2h')).toBe(7_200_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('1500ms')).toBe(1500);
    for (const bad of ['10', '15 m', 'm', '-5s', '1.5h', '999ms', '31d', '']) expect(() => parseDuration(bad), bad).toThrow();
    expect(formatPeriod(900_000)).toBe('15m');
    expect(formatPeriod(5_400_000)).toBe('1h30m');
    expect(formatPeriod(90_061_000)).toBe('1d1h1m1s');
    expect(formatPeriod(1500)).toBe('1500ms');
  });

  it('sets, lists, turns off and sets the default; refuses bad command lines and remote sessions', async () => {
    const d = await startDaemon({ env: { VOS_MDNS: '0', VOS_LISTEN: 'none' } });
    daemons.push(d);
    const run = await vos(d.home, ['run', '--detach', '--name', 'sleeper', '--', 'sleep', '1000']);
    expect(run.code).toBe(0);
    const id = run.stdout.trim();

    const shown = await vos(d.home, ['schedule']);
    expect(shown).toMatchObject({ code: 0, stderr: '' });
    expect(shown.stdout).toContain('new sessions: every 15m, keep 3');
    expect(shown.stdout).toMatch(/^SESSION\s+NAME\s+EVERY\s+KEEP\s+NEXT RUN\s+LAST RESULT\s+PAUSED$/m);
    expect(shown.stdout).toMatch(new RegExp(`^${id}\\s+sleeper\\s+15m\\s+3\\s+in `, 'm'));

    // --keep left out: the session's own (3, from the default).
    const set = await vos(d.home, ['schedule', 'sleeper', '--every', '1s']);
    expect(set).toMatchObject({ code: 0, stdout: `session ${id} (sleeper): a checkpoint every 1s, keeping the newest 3 images\n`, stderr: '' });
    const two = await vos(d.home, ['schedule', id, '--every', '1s', '--keep', '2', '--json']);
    expect(JSON.parse(two.stdout)).toMatchObject({ session: id, everyMs: 1000, keep: 2 });

    const ran = await waitFor(
      'a scheduled checkpoint',
      async () => {
        const list = JSON.parse((await vos(d.home, ['schedule', '--json'])).stdout) as ScheduleList;
        return list.schedules.find((s) => s.session === id && s.last?.ok);
      },
      30_000,
      200,
    );
    expect(ran.last!.image).toMatch(/^[0-9a-f]{8}$/);
    expect((await vos(d.home, ['schedule'])).stdout).toMatch(new RegExp(`^${id}\\s+sleeper\\s+1s\\s+2\\s+.*ago: image ${'[0-9a-f]{8}'}, `, 'm'));
    expect((await vos(d.home, ['images', id])).stdout).toContain('scheduled');

    const off = await vos(d.home, ['schedule', id, '--off']);
    expect(off).toMatchObject({ code: 0, stdout: `session ${id} (sleeper): no scheduled checkpoints\n` });
    expect((await vos(d.home, ['schedule'])).stdout).toMatch(new RegExp(`^${id}\\s+sleeper\\s+off\\s+-\\s+-\\s`, 'm'));

    expect((await vos(d.home, ['schedule', '--default', '--every', '2h', '--keep', '5'])).stdout).toBe('new sessions: every 2h, keep 5\n');
    expect(JSON.parse((await vos(d.home, ['schedule', '--default', '--off', '--json'])).stdout)).toEqual({ everyMs: null, keep: 5 });
    expect((await vos(d.home, ['schedule', '--default'])).stdout).toBe('new sessions: no schedule (keep 5 when one is set)\n');

    for (const [args, message] of [
      [['schedule', id, '--every', '10'], /not a duration/],
      [['schedule', id, '--every', '500ms'], /from 1s to 30d/],
      [['schedule', id], /say how often/],
      [['schedule', id, '--off', '--keep', '2'], /--off goes alone/],
      [['schedule', '--every', '1m'], /give a session/],
      [['schedule', id, '--default', '--every', '1m'], /takes no session/],
      [['schedule', id, '--every', '1m', '--keep', '0'], /--keep takes/],
      [[`schedule`, `${id}@otherbox`, '--every', '1m'], /another machine/],
    ] as const) {
      const r = await vos(d.home, [...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    const unknown = await vos(d.home, ['schedule', 'nosuch', '--every', '1m', '--keep', '1']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no session "nosuch"/);
    expect((await vos(d.home, ['schedule', '--help'])).stdout).toMatch(/^usage: vos schedule/);
  }, 120_000); // some 25 runs of the vos command, each a node process
});
