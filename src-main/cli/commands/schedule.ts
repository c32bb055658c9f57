/** vos schedule: checkpoints of a session on a schedule, and the default for new sessions. */
import { MAX_SCHEDULE_MS, MIN_SCHEDULE_MS, type ScheduleDefault, type ScheduleInfo, type ScheduleRun } from '../../api/protocol.js';
import { formatPeriod, parsePeriod } from '../../api/schedule-text.js';
import { formatDuration } from '../../api/session-text.js';
import { UsageError, parseArgs } from '../args.js';
import type { Command } from '../command.js';
import { formatBytes, table } from '../format.js';

/** The period as `--every` takes it (api/schedule-text.ts, shared with the app). */
export { formatPeriod };

/** "30s", "15m", "2h", "1h30m", "1d" as milliseconds; throws a UsageError on anything else. */
export function parseDuration(text: string): number {
  const ms = parsePeriod(text);
  if (ms === null) {
    throw new UsageError(`"${text}" is not a duration: give a number and a unit, e.g. 30s, 15m, 2h or 1h30m`);
  }
  if (ms < MIN_SCHEDULE_MS || ms > MAX_SCHEDULE_MS) {
    throw new UsageError(`the period must be from ${formatPeriod(MIN_SCHEDULE_MS)} to ${formatPeriod(MAX_SCHEDULE_MS)}`);
  }
  return ms;
}

function parseKeep(text: string): number {
  if (!/^[1-9]\d{0,4}$/.test(text)) throw new UsageError('--keep takes a number of images from 1 to 99999');
  return Number(text);
}

function defaultText(d: ScheduleDefault): string {
  return d.everyMs === null ? `new sessions: no schedule (keep ${d.keep} when one is set)` : `new sessions: every ${formatPeriod(d.everyMs)}, keep ${d.keep}`;
}

function lastText(last: ScheduleRun | null, paused: string | null, now: number): string {
  if (!last) return '-';
  const when = `${formatDuration(Math.max(0, now - last.at))} ago`;
  if (!last.ok) return `${when}: ${last.error === paused ? 'failed (see PAUSED)' : (last.error ?? 'failed')}`;
  // A whole image's reason comes once, with the run where it is new (ScheduleRun.fullReason).
  const kind = last.incremental === undefined ? '' : last.incremental ? 'incremental' : last.fullReason ? `full (${last.fullReason})` : 'full';
  const what = [last.image ? `image ${last.image}` : 'ok', last.bytes !== undefined ? formatBytes(last.bytes) : '', kind]
    .filter(Boolean)
    .join(', ');
  return `${when}: ${what}`;
}

export function schedulesTable(list: { default: ScheduleDefault; schedules: ScheduleInfo[] }, now = Date.now()): string {
  const head = `${defaultText(list.default)}\n`;
  if (list.schedules.length === 0) return `${head}no sessions (vos run -- COMMAND starts one)\n`;
  return (
    head +
    table(
      ['SESSION', 'NAME', 'EVERY', 'KEEP', 'NEXT RUN', 'LAST RESULT', 'PAUSED'],
      list.schedules.map((s) => [
        s.session,
        s.name,
        s.everyMs === null ? 'off' : formatPeriod(s.everyMs),
        s.everyMs === null ? '-' : String(s.keep),
        s.nextRunAt === null ? '-' : s.nextRunAt <= now ? 'due now' : `in ${formatDuration(s.nextRunAt - now + 999)}`,
        lastText(s.last, s.paused, now),
        s.paused ?? '-',
      ]),
    )
  );
}

function scheduleLine(s: ScheduleInfo): string {
  if (s.everyMs === null) return `session ${s.session} (${s.name}): no scheduled checkpoints\n`;
  return `session ${s.session} (${s.name}): a checkpoint every ${formatPeriod(s.everyMs)}, keeping the newest ${s.keep} images\n`;
}

export const scheduleCommand: Command = {
  name: 'schedule',
  summary: 'checkpoint sessions on a schedule, or list the schedules',
  help: `usage: vos schedule [--json]
       vos schedule ID --every DUR [--keep N] [--json]
       vos schedule ID --off [--json]
       vos schedule --default (--every DUR [--keep N] | --off) [--json]

Checkpoints a running session of this machine into the image store (see vos images) every
DUR, keeping its newest N images (older ones of the session, manual ones included, are
removed after each scheduled checkpoint). Checkpoints run one at a time; the program is
stopped only for the moment it takes. A schedule outlives the agent: the next agent goes on
with it, and a run that came due meanwhile happens soon after it starts, once.

Without ID, lists every session's schedule: its period, retention, next run, the last
result, and why it is paused. A failed checkpoint never harms the session: it is shown as
the last result and the schedule goes on; a program that cannot be checkpointed at all (a
program under a debugger, one holding a SysV message queue, ...) pauses its schedule,
with the reason, until you set it again.

  ID            session id, unique id prefix or name (this machine's; not ID@MACHINE)
  --every DUR   the period: a number and a unit (ms, s, m, h, d), e.g. 30s, 15m, 2h, 1h30m;
                at least 1s
  --keep N      images of the session to keep (default: the session's current value, or
                the default's)
  --off         no more scheduled checkpoints of the session
  --default     the schedule new sessions get (shipped: every 15m, keep 3); existing
                sessions keep theirs. --default alone shows it
  --json        the schedule(s) as JSON
`,
  async run(argv, ctx) {
    const { options, positionals } = parseArgs(argv, {
      every: { type: 'string' },
      keep: { type: 'string' },
      off: { type: 'boolean' },
      default: { type: 'boolean' },
      json: { type: 'boolean' },
    });
    if (positionals.length > 1) throw new UsageError('give at most one session: vos schedule ID --every DUR');
    const every = typeof options.every === 'string' ? parseDuration(options.every) : undefined;
    const keep = typeof options.keep === 'string' ? parseKeep(options.keep) : undefined;
    const off = options.off === true;
    if (off && (every !== undefined || keep !== undefined)) throw new UsageError('--off goes alone: it takes no --every or --keep');
    const id = positionals[0];
    if (options.default && id !== undefined) throw new UsageError('--default is for new sessions; it takes no session');
    if (id !== undefined) {
      const at = id.lastIndexOf('@');
      if (at > 0 && at < id.length - 1) {
        throw new UsageError(`${id} is a session of another machine: schedule it with vos schedule on that machine`);
      }
      if (!off && every === undefined) throw new UsageError('say how often: vos schedule ID --every DUR (or --off)');
    } else if (!options.default && (off || every !== undefined || keep !== undefined)) {
      throw new UsageError('give a session (vos schedule ID --every DUR) or --default');
    }
    const client = await ctx.connect();
    try {
      const print = (value: unknown, text: string): void => ctx.out(options.json ? JSON.stringify(value) + '\n' : text);
      if (options.default) {
        const d = await client.request('schedule.default', {
          ...(off ? { off: true } : {}),
          ...(every !== undefined ? { everyMs: every } : {}),
          ...(keep !== undefined ? { keep } : {}),
        });
        print(d, `${defaultText(d)}\n`);
      } else if (id === undefined) {
        const list = await client.request('schedule.list', {});
        print(list, schedulesTable(list));
      } else if (off) {
        const s = await client.request('schedule.off', { session: id });
        print(s, scheduleLine(s));
      } else {
        let n = keep;
        if (n === undefined) {
          // The session's own retention if it has one, else the default's.
          const list = await client.request('schedule.list', {});
          const mine = list.schedules.filter((s) => s.session === id || s.session.startsWith(id) || s.name === id);
          n = mine.length === 1 && mine[0]!.everyMs !== null ? mine[0]!.keep : list.default.keep;
        }
        const s = await client.request('schedule.set', { session: id, everyMs: every!, keep: n });
        print(s, scheduleLine(s));
      }
      return 0;
    } finally {
      client.close();
    }
  },
};
