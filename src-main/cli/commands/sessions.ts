/** The session commands that are one request each: ls, kill, rm, resize, send, screen, wait. */
import type { ApiClient } from '../../api/client.js';
import { unescapeC } from '../../base/c-escapes.js';
import { UsageError, parseArgs, requireInt, type OptionSpecs } from '../args.js';
import type { Command, CommandContext } from '../command.js';
import { sessionsTable } from '../format.js';

/** Parses, connects, runs `body`, always closes the connection. */
async function withClient<T>(
  argv: string[],
  specs: OptionSpecs,
  positionalNames: string[],
  ctx: CommandContext,
  body: (client: ApiClient, options: Record<string, string | boolean | undefined>, positionals: string[]) => Promise<T>,
  allowMore = false,
): Promise<T> {
  const { options, positionals } = parseArgs(argv, specs);
  if (positionals.length < positionalNames.length) throw new UsageError(`expected ${positionalNames.join(' ')}${allowMore ? ' ...' : ''}`);
  if (!allowMore && positionals.length > positionalNames.length) {
    // Name what is too much ("vos wait ID 'prompt>'": the pattern goes after --text).
    const extra = positionals.slice(positionalNames.length).map((p) => JSON.stringify(p)).join(' ');
    throw new UsageError(`expected ${positionalNames.join(' ')} and options only; ${extra} is more than that`);
  }
  const client = await ctx.connect();
  try {
    return await body(client, options, positionals);
  } finally {
    client.close();
  }
}

const REF_HELP = '  ID    session id, unique id prefix or name; ID@MACHINE for a session of a paired machine\n';

export const lsCommand: Command = {
  name: 'ls',
  summary: 'list sessions',
  help: `usage: vos ls [--all] [--json]

Lists the sessions of the agent: running ones, ended ones (until removed with vos rm), and
recoverable ones: sessions whose program is gone without having ended (pod killed, machine
rebooted), shown with the age of their latest image; vos recover brings them back.
  -a, --all  also the sessions of every online paired machine (as ID@MACHINE); a machine
             whose sessions cannot be had (it no longer trusts this one, it did not answer
             within 10 s) gets a line saying so instead (on stderr with --json)
  --json     an array of session objects (id, name, command, args, cwd, pid, startedAt,
             endedAt, state (running, exited, recoverable), exit, cols, rows, viewers,
             restoreNote; recoverable {image, imageTime} for a recoverable session (its
             latest good image); peer {id, name} for another machine's session, whose id
             is then ID@MACHINEID); relayed [{what, via {id, name}}]: its connections to
             outside that the machine it moved from keeps open and relays
`,
  run: (argv, ctx) =>
    withClient(argv, { json: { type: 'boolean' }, all: { type: 'boolean', short: 'a' } }, [], ctx, async (client, options) => {
      const sessions = await client.request('session.list', {});
      // Machine by machine, so that one whose sessions cannot be had is named with the reason.
      const others = options.all ? await client.request('peer.sessions', {}) : [];
      const all = [...sessions, ...others.flatMap((p) => p.sessions)];
      ctx.out(options.json ? JSON.stringify(all, null, 2) + '\n' : sessionsTable(all));
      for (const p of others) {
        if (!p.problem) continue;
        const line = `${p.peer.name}: its sessions are not listed: ${p.problem}\n`;
        if (options.json) ctx.err(line);
        else ctx.out(line);
      }
      return 0;
    }),
};

export const killCommand: Command = {
  name: 'kill',
  summary: 'send a signal to a session\'s program',
  help: `usage: vos kill ID [--signal SIG]

Sends SIG (default HUP, as when a terminal is closed) to the session's program. The session
stays listed with its exit status until vos rm.
${REF_HELP}  -s, --signal SIG    a name (TERM, SIGKILL) or a number
`,
  run: (argv, ctx) =>
    withClient(argv, { signal: { type: 'string', short: 's' } }, ['ID'], ctx, async (client, options, [id]) => {
      const signal = typeof options.signal === 'string' ? options.signal : undefined;
      await client.request('session.kill', { id: id!, ...(signal ? { signal } : {}) });
      return 0;
    }),
};

export const rmCommand: Command = {
  name: 'rm',
  summary: 'forget an ended or recoverable session (--force: kill it first)',
  help: `usage: vos rm ID [--force]

Removes an ended session from the list. A running session is refused unless --force, which
kills it. A recoverable session is forgotten (its images stay in the store: vos images).
${REF_HELP}`,
  run: (argv, ctx) =>
    withClient(argv, { force: { type: 'boolean', short: 'f' } }, ['ID'], ctx, async (client, options, [id]) => {
      await client.request('session.remove', { id: id!, force: options.force === true });
      return 0;
    }),
};

export const resizeCommand: Command = {
  name: 'resize',
  summary: 'set a session\'s terminal size',
  help: `usage: vos resize ID COLS ROWS

Sets the session's terminal size (the program gets SIGWINCH). An attached viewer that types
or resizes afterwards takes the size back.
${REF_HELP}`,
  run: (argv, ctx) =>
    withClient(argv, {}, ['ID', 'COLS', 'ROWS'], ctx, async (client, _o, [id, cols, rows]) => {
      await client.request('session.resize', {
        id: id!,
        cols: requireInt(cols, 'COLS', 1, 4096),
        rows: requireInt(rows, 'ROWS', 1, 4096),
      });
      return 0;
    }),
};

export const sendCommand: Command = {
  name: 'send',
  summary: 'type text into a session',
  help: `usage: vos send ID TEXT...

Types TEXT into the session as if from its keyboard. Several TEXT arguments are joined with
spaces. C-style escapes are interpreted: \\r (Enter), \\n, \\t, \\e (Escape), \\a, \\b, \\f, \\v,
\\0, \\\\, \\xNN (a byte, e.g. \\x03 for Ctrl-C) and \\uNNNN.
${REF_HELP}`,
  run: (argv, ctx) =>
    withClient(
      argv,
      {},
      ['ID', 'TEXT'],
      ctx,
      async (client, _o, [id, ...text]) => {
        await client.request('session.input', { id: id!, data: unescapeC(text.join(' ')) });
        return 0;
      },
      true,
    ),
};

export const screenCommand: Command = {
  name: 'screen',
  summary: 'print the visible screen of a session',
  help: `usage: vos screen ID [--json]

Prints the session's visible screen, one line per row, trailing blanks trimmed.
${REF_HELP}  --json    {"id", "cols", "rows", "cursor": {"x", "y"}, "lines": [...]}
`,
  run: (argv, ctx) =>
    withClient(argv, { json: { type: 'boolean' } }, ['ID'], ctx, async (client, options, [id]) => {
      const screen = await client.request('session.screen', { id: id! });
      ctx.out(options.json ? JSON.stringify(screen) + '\n' : screen.lines.join('\n') + '\n');
      return 0;
    }),
};

export const waitCommand: Command = {
  name: 'wait',
  summary: 'wait until a session\'s screen matches a pattern',
  help: `usage: vos wait ID --text REGEX [--timeout SECONDS]

Exits 0 as soon as the visible screen (rows joined with newlines, trailing blanks trimmed)
matches REGEX, in which ^ and $ match at each row. REGEX is in RE2 syntax (JavaScript's
regular expressions without backreferences and lookaround), matched in linear time; a pattern
RE2 does not accept is refused at once. Exits 1 with a message when SECONDS pass first
(default 30) or when the program ends without showing it.
${REF_HELP}  -t, --text REGEX      the pattern
      --timeout SECONDS  may be fractional
`,
  run: (argv, ctx) =>
    withClient(
      argv,
      { text: { type: 'string', short: 't' }, timeout: { type: 'string' } },
      ['ID'],
      ctx,
      async (client, options, [id]) => {
        if (typeof options.text !== 'string' || options.text === '') throw new UsageError('--text REGEX is required');
        const seconds = options.timeout === undefined ? 30 : Number(options.timeout);
        if (!Number.isFinite(seconds) || seconds < 0 || seconds > 86400) {
          throw new UsageError('--timeout must be a number of seconds from 0 to 86400');
        }
        await client.request('session.wait', { id: id!, pattern: options.text, timeoutMs: Math.round(seconds * 1000) });
        return 0;
      },
    ),
};
