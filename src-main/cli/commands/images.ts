/** vos checkpoint and vos restore. */
import { resolve } from 'node:path';
import { UsageError, parseArgs } from '../args.js';
import type { Command } from '../command.js';
import { formatBytes } from '../format.js';


export const checkpointCommand: Command = {
  name: 'checkpoint',
  summary: 'write an image of a running session',
  help: `usage: vos checkpoint ID [--out FILE] [--stop] [--json]

Stops every process of the session for a moment, writes their state (memory, threads, open
files, terminal) to an image, and lets them run on. vos restore brings the image back.

  ID            session id, unique id prefix or name
  --out FILE    where to write the image (default: a new file in $VOS_HOME/images)
  --stop        end the session after a successful checkpoint
  --json        {"file", "bytes", "processes", "threads", "frozenMs", "wallMs", "stopped"}

If the checkpoint fails, the session keeps running and nothing is written.
`,
  async run(argv, ctx) {
    const { options, positionals } = parseArgs(argv, {
      out: { type: 'string', short: 'o' },
      stop: { type: 'boolean' },
      json: { type: 'boolean' },
    });
    if (positionals.length !== 1) throw new UsageError('give exactly one session: vos checkpoint ID');
    const client = await ctx.connect();
    try {
      const out = typeof options.out === 'string' ? resolve(options.out) : undefined;
      const r = await client.request('session.checkpoint', {
        id: positionals[0]!,
        ...(out ? { out } : {}),
        stop: options.stop === true,
      });
      if (options.json) {
        ctx.out(JSON.stringify(r) + '\n');
      } else {
        const p = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;
        ctx.out(
          `${r.file}\n  ${formatBytes(r.bytes)}, ${p(r.processes, 'process', 'processes')}, ${p(r.threads, 'thread', 'threads')}; ` +
            `frozen ${r.frozenMs.toFixed(1)} ms, ${r.wallMs} ms in all${r.stopped ? '; the session has ended' : ''}\n`,
        );
      }
      return 0;
    } finally {
      client.close();
    }
  },
};

export const restoreCommand: Command = {
  name: 'restore',
  summary: 'start a session from an image, where it left off',
  help: `usage: vos restore FILE [--name N] [--json]

Brings the processes of an image back to life in a new session: same memory, threads, open
files and terminal state; the screen as it was. Prints the new session's id (attach to it
with vos attach). The same image can be restored again later.

  --name N    a name for the new session (default: the image's)
  --json      {"id": ...}
`,
  async run(argv, ctx) {
    const { options, positionals } = parseArgs(argv, { name: { type: 'string', short: 'n' }, json: { type: 'boolean' } });
    if (positionals.length !== 1) throw new UsageError('give exactly one image: vos restore FILE');
    const client = await ctx.connectOrStart();
    try {
      const session = await client.request('session.restore', {
        file: resolve(positionals[0]!),
        ...(typeof options.name === 'string' ? { name: options.name } : {}),
      });
      ctx.out(options.json ? JSON.stringify({ id: session.id }) + '\n' : session.id + '\n');
      if (session.restoreNote) ctx.err(`vos: note: ${session.restoreNote}\n`);
      return 0;
    } finally {
      client.close();
    }
  },
};
