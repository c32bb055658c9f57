/** vos migrate: move a running session to a paired machine. */
import { resolve } from 'node:path';
import type { ApiEvent } from '../../api/protocol.js';
import { UsageError, parseArgs } from '../args.js';
import type { Command } from '../command.js';
import { formatBytes, peerText, sessionRef } from '../format.js';

const PHASES: Record<string, string> = {
  checking: 'checking what it needs there',
  copying: 'copying its memory while it runs',
  freezing: 'stopping it here',
  sending: 'sending',
  restoring: 'restoring it there',
  switching: 'switching over',
  done: 'done',
  failed: 'failed',
};

type Progress = Extract<ApiEvent, { event: 'migration.progress' }>;

/** One line of progress: phase, a bar, bytes of total, rate, time left. */
function progressLine(p: Progress, startedAt: number, width: number): string {
  const label = PHASES[p.phase] ?? p.phase;
  if ((p.phase !== 'sending' && p.phase !== 'copying') || p.total <= 0) return `${label}${p.sent ? ` (${formatBytes(p.sent)})` : ''}`;
  const fraction = Math.min(1, p.sent / p.total);
  const seconds = Math.max(0.001, (Date.now() - startedAt) / 1000);
  const rate = p.sent / seconds;
  const left = rate > 0 ? Math.max(0, (p.total - p.sent) / rate) : 0;
  const barWidth = Math.max(10, Math.min(30, width - 60));
  const done = Math.round(fraction * barWidth);
  return `${label} [${'#'.repeat(done)}${'.'.repeat(barWidth - done)}] ${formatBytes(p.sent)} of ~${formatBytes(p.total)}, ${formatBytes(rate)}/s, ${left.toFixed(0)} s left`;
}

/** "16M" -> bytes; plain digits are bytes. */
function parseSize(text: string): number {
  const m = /^(\d+)([KMG]?)$/i.exec(text.trim());
  if (!m) throw new UsageError(`--send-files-up-to: '${text}' is not a size (bytes, or a number with K, M or G)`);
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Number(m[1]) * unit;
}

export const migrateCommand: Command = {
  name: 'migrate',
  summary: 'move a running session to a paired machine',
  help: `usage: vos migrate ID PEER [--stop-and-copy] [--send-files-up-to SIZE] [--take-as-is PATH]... [--json]

Moves a running session, with its processes, memory, open files and screen, to the paired
machine PEER, where it goes on from where it was. It is one transaction: the session ends here
only once it runs there; if anything fails (the link, the other machine, a file it needs that
is not there) it goes on here, and the reason is printed. Terminals attached to it follow it.

The move is live: the memory is copied while the session runs, and it stops only to send what
it changed since (where this kernel cannot track written pages, it is stopped for the whole
copy instead, and the reason is printed).

Its connections to outside the session (an ssh login, a database client's connection) stay
open on the machine it leaves, which relays their bytes to it over the link: they last as long
as that machine's agent and the link do, and end as a network failure would after that.

A regular file the session has open that PEER does not have is sent along if it is at most
SIZE (default 16M); it is PEER's from then on. A bigger one, or one PEER has with other
content (never replaced), is named in the refusal. A file the program only appends to (a log)
is taken as PEER has it; so is one named with --take-as-is: the program then uses PEER's file
as it is (a REPL that rewrites its whole history file, say), and the move says so.

  ID               session id, unique id prefix or name; ID@MACHINE for a session of a
                   paired machine (it moves from there; PEER may be this machine)
  PEER             a paired machine: its name, or the start of its id
  --stop-and-copy  stop it for the whole copy (no copying while it runs)
  --send-files-up-to SIZE   bytes, or with K, M or G; 0 sends none
  --take-as-is PATH         an open file the program may use as PEER has it (repeatable)
  --json           the result: {"from", "session", "bytes", "downtimeMs", "wallMs", "mode",
                   "rounds", "fallback", "filesSent", "relayed"}

Exit status: 0 moved, 1 stayed where it was (or could not be asked), 2 usage.
`,
  async run(argv, ctx) {
    const { options, lists, positionals } = parseArgs(argv, {
      json: { type: 'boolean' },
      'stop-and-copy': { type: 'boolean' },
      'send-files-up-to': { type: 'string' },
      'take-as-is': { type: 'string', repeatable: true },
    });
    const takeAsIs = lists['take-as-is']?.map((p) => resolve(p));
    const upTo = options['send-files-up-to'];
    const sendFilesUpTo = typeof upTo === 'string' ? parseSize(upTo) : undefined;
    if (positionals.length !== 2) throw new UsageError('usage: vos migrate ID PEER');
    const [id, peer] = positionals as [string, string];
    const client = await ctx.connect();
    const tty = process.stderr.isTTY && !options.json;
    let startedSending = 0;
    let lastPhase = '';
    const off = client.onEvent((e) => {
      if (e.event !== 'migration.progress' || options.json) return;
      if (e.detail?.startsWith('warning: ')) {
        // Said before the session stops: what the move will not carry.
        if (tty) process.stderr.write('\r\x1b[K');
        ctx.err(`vos: ${e.detail}\n`);
        return;
      }
      if ((e.phase === 'sending' || e.phase === 'copying') && !startedSending) startedSending = Date.now();
      if (tty) {
        process.stderr.write(`\r\x1b[K${progressLine(e, startedSending || Date.now(), process.stderr.columns ?? 80)}`);
      } else if (e.phase !== lastPhase && e.phase !== 'failed') {
        ctx.err(`${PHASES[e.phase] ?? e.phase}\n`);
      }
      lastPhase = e.phase;
    });
    try {
      const r = await client.request('session.migrate', {
        id,
        peer,
        mode: options['stop-and-copy'] ? 'stop-and-copy' : 'live',
        ...(sendFilesUpTo !== undefined ? { sendFilesUpTo } : {}),
        ...(takeAsIs ? { takeAsIs } : {}),
      });
      if (tty) process.stderr.write('\r\x1b[K');
      // A session of a peer may come here: then it is this machine's.
      const there = r.session.peer?.name ?? 'this machine';
      if (options.json) ctx.out(JSON.stringify(r) + '\n');
      else {
        ctx.out(
          `moved ${r.session.name} to ${there}: it runs there as ${sessionRef(r.session)}\n` +
            `  ${formatBytes(r.bytes)} sent; stopped for ${r.downtimeMs} ms; ${r.wallMs} ms in all; ` +
            (r.mode === 'live' ? `live (${r.rounds} rounds while it ran)\n` : 'stop-and-copy\n') +
            (r.fallback ? `  not live: ${r.fallback}\n` : '') +
            (r.session.restoreNote ? `  note: ${r.session.restoreNote}\n` : '') +
            (r.filesSent.length ? `  sent along (${there}'s now): ${r.filesSent.join(', ')}\n` : '') +
            r.relayed.map((c) => `  kept open where it was and relayed: ${peerText(c)}\n`).join(''),
        );
      }
      return 0;
    } finally {
      if (tty) process.stderr.write('\r\x1b[K');
      off();
      client.close();
    }
  },
};
