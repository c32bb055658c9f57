/** vos checkpoint, vos restore and vos images. */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ImageInfo } from '../../api/protocol.js';
import { formatDuration } from '../../api/session-text.js';
import { UsageError, parseArgs } from '../args.js';
import { DEFAULT_DETACH_KEY, attachTerminal, describeKey, exitStatusOf } from '../attach-terminal.js';
import type { Command } from '../command.js';
import { formatBytes, table } from '../format.js';
import { reportOutcome } from './attach.js';


export const checkpointCommand: Command = {
  name: 'checkpoint',
  summary: 'write an image of a running session',
  help: `usage: vos checkpoint ID [--keep N | --out FILE] [--incremental] [--stop] [--json]

Stops every process of the session for a moment, writes their state (memory, threads, open
files, terminal) to an image, and lets them run on. vos restore brings the image back.

By default the image goes into the image store ($VOS_HOME/images; see vos images), with a
copy of the session's small open files (up to 16 MiB each, 64 MiB in all), so that it can be
restored even after the program deleted or changed them: a kept file that is missing is put
back at restore; one that is there with other content refuses the restore, naming it.

  ID            session id, unique id prefix or name
  --keep N      after a successful checkpoint, remove the session's older images in the
                store beyond the newest N (default: keep all)
  --out FILE    write the image to FILE instead of the store. Such an image carries no
                copy of the open files: they must be there, unchanged, at restore
  --incremental write only the memory the program changed since the session's previous
                image in the store (scheduled checkpoints do this); the rest is taken from
                that image, its parent, which is kept as long as this one is. A whole image
                instead, saying why, when that cannot be (the first one, no write tracking
                on this kernel, a migration since, every 8th image of a chain)
  --stop        end the session after a successful checkpoint
  --json        {"file", "image", "bytes", "keptFiles", "removed", "processes", "threads",
                "frozenMs", "wallMs", "stopped", "incremental", "parent", "fullReason",
                "warnings" (what a restore will not carry)}

The image is written to a temporary file beside its place and takes its place only when
complete (a symlink at FILE is replaced, never followed). If the checkpoint fails (a full
disk, a crash of the agent), the session keeps running and every earlier image, FILE
included, stays as it was.
`,
  async run(argv, ctx) {
    const { options, positionals } = parseArgs(argv, {
      out: { type: 'string', short: 'o' },
      keep: { type: 'string' },
      incremental: { type: 'boolean' },
      stop: { type: 'boolean' },
      json: { type: 'boolean' },
    });
    if (options.incremental === true && typeof options.out === 'string') throw new UsageError('--incremental is for the image store; it does not go with --out');
    if (positionals.length !== 1) throw new UsageError('give exactly one session: vos checkpoint ID');
    let keep: number | undefined;
    if (typeof options.keep === 'string') {
      if (!/^[1-9]\d{0,4}$/.test(options.keep)) throw new UsageError('--keep takes a number of images from 1 to 99999');
      if (typeof options.out === 'string') throw new UsageError('--keep is for the image store; it does not go with --out');
      keep = Number(options.keep);
    }
    const client = await ctx.connect();
    // What will not survive is said before the session is frozen (an event), then the exact
    // list comes with the result: each is printed once.
    const said = new Set<string>();
    const off = client.onEvent((e) => {
      if (e.event !== 'checkpoint.warning' || said.has(e.warning)) return;
      said.add(e.warning);
      ctx.err(`vos: warning: ${e.warning}\n`);
    });
    try {
      const out = typeof options.out === 'string' ? resolve(options.out) : undefined;
      const r = await client.request('session.checkpoint', {
        id: positionals[0]!,
        ...(out ? { out } : {}),
        stop: options.stop === true,
        ...(keep !== undefined ? { keep } : {}),
        ...(options.incremental === true ? { incremental: true } : {}),
      });
      if (options.json) {
        ctx.out(JSON.stringify(r) + '\n');
      } else {
        const p = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;
        const chain = r.incremental ? `, incremental on ${r.parent}` : r.fullReason ? `, whole (${r.fullReason})` : '';
        const kept = r.image ? `image ${r.image} in the store${chain}, ${p(r.keptFiles, 'open file', 'open files')} kept` : '';
        const removed = r.removed.length > 0 ? `; removed the older ${p(r.removed.length, 'image', 'images')} ${r.removed.join(', ')}` : '';
        ctx.out(
          `${r.file}\n${kept ? `  ${kept}${removed}\n` : ''}  ${formatBytes(r.bytes)}, ${p(r.processes, 'process', 'processes')}, ${p(r.threads, 'thread', 'threads')}; ` +
            `frozen ${r.frozenMs.toFixed(1)} ms, ${r.wallMs} ms in all${r.stopped ? '; the session has ended' : ''}\n`,
        );
        for (const o of r.stoppedFromOutside ?? []) ctx.out(`  stopped from outside (no vOS runtime in it): ${o}\n`);
      }
      for (const w of r.warnings ?? []) if (!said.has(w)) ctx.err(`vos: warning: ${w}\n`);
      return 0;
    } finally {
      off();
      client.close();
    }
  },
};

export const restoreCommand: Command = {
  name: 'restore',
  summary: 'start a session from an image, where it left off',
  help: `usage: vos restore IMAGE|FILE [--name N] [--take-as-is PATH]... [-d] [--json]

Brings the processes of an image back to life in a new session: same memory, threads, open
files and terminal state; the screen as it was. On a terminal it attaches to the new session
(${describeKey(DEFAULT_DETACH_KEY)} detaches; the program keeps running); with -d, or where
there is no terminal, it prints the session's id instead. The same image can be restored again
later, and more than once.

  IMAGE       an image of the store (its id or a unique prefix; see vos images)
  FILE        an image file (vos checkpoint --out)

An image is a moment in the past: the restored program's memory goes back to that moment,
but the files it wrote since then do not. A store image puts back its kept copies of the
program's small open files where they are missing, and refuses (naming the file) when one is
there with other content, unless the program only appends to it (a log) or it is named with
--take-as-is (a REPL's history file, which it rewrites whole); for other files, what is on
disk now is what the program sees.
The older the image, the further back the program goes, and the more it may disagree with
its files. (A session whose program is gone is brought back with vos recover.)

  --name N    a name for the new session (default: the image's)
  --take-as-is PATH   a kept file the program may use as it is now (repeatable)
  -d, --detach        do not attach; print the session id
  --json      {"id": ...} (does not attach)
`,
  async run(argv, ctx) {
    const { options, lists, positionals } = parseArgs(argv, {
      name: { type: 'string', short: 'n' },
      json: { type: 'boolean' },
      detach: { type: 'boolean', short: 'd' },
      'take-as-is': { type: 'string', repeatable: true },
    });
    const attach = options.detach !== true && options.json !== true && process.stdin.isTTY && process.stdout.isTTY;
    if (positionals.length !== 1) throw new UsageError('give exactly one image: vos restore IMAGE|FILE');
    const takeAsIs = lists['take-as-is']?.map((p) => resolve(p));
    const arg = positionals[0]!;
    // A file by that name wins; otherwise something shaped like an image id is one of the store's.
    const source = !existsSync(arg) && /^[0-9a-f]{1,8}$/.test(arg) ? { image: arg } : { file: resolve(arg) };
    const client = await ctx.connectOrStart();
    try {
      const session = await client.request('session.restore', {
        ...source,
        ...(typeof options.name === 'string' ? { name: options.name } : {}),
        ...(takeAsIs ? { takeAsIs } : {}),
      });
      const note = session.restoreNote ? `vos: note: ${session.restoreNote}\n` : '';
      if (attach) {
        // Said once the terminal is the user's again: the session's screen would wipe it now.
        const outcome = await attachTerminal(client, session.id, DEFAULT_DETACH_KEY);
        reportOutcome(outcome, ctx);
        ctx.err(note);
        return outcome.reason === 'exited' ? exitStatusOf(outcome.session) : 0;
      }
      ctx.err(note);
      ctx.out(options.json ? JSON.stringify({ id: session.id }) + '\n' : session.id + '\n');
      return 0;
    } finally {
      client.close();
    }
  },
};

export const imagesCommand: Command = {
  name: 'images',
  summary: 'list the images in the store, or remove one',
  help: `usage: vos images [ID] [--json]
       vos images rm IMAGE...

Lists the images in the agent's store ($VOS_HOME/images), newest first: the session each was
taken of (id and name), when, its kind (manual, scheduled, before-shutdown), its size on disk,
the open files kept with it, and the image it builds on (PARENT, for incremental images). An
image whose file is missing or cut short is listed as damaged. vos restore IMAGE restores one.

  ID        only the images of this session (id, id prefix or name; it may have ended)
  --json    the list as JSON
  rm IMAGE  removes the image (id or unique prefix), and the kept files no other image needs
`,
  async run(argv, ctx) {
    if (argv[0] === 'rm') {
      const { positionals } = parseArgs(argv.slice(1), {});
      if (positionals.length === 0) throw new UsageError('give the images to remove: vos images rm IMAGE...');
      const client = await ctx.connect();
      try {
        for (const image of positionals) {
          const r = await client.request('image.remove', { image });
          ctx.out(`removed ${r.id}\n`);
        }
        return 0;
      } finally {
        client.close();
      }
    }
    const { options, positionals } = parseArgs(argv, { json: { type: 'boolean' } });
    if (positionals.length > 1) throw new UsageError('give at most one session: vos images [ID]');
    const client = await ctx.connect();
    try {
      const images = await client.request('image.list', positionals[0] !== undefined ? { session: positionals[0] } : {});
      ctx.out(options.json ? JSON.stringify(images) + '\n' : imagesTable(images));
      return 0;
    } finally {
      client.close();
    }
  },
};

export function imagesTable(images: ImageInfo[], now = Date.now()): string {
  if (images.length === 0) return 'no images (vos checkpoint ID makes one)\n';
  return table(
    ['IMAGE', 'SESSION', 'NAME', 'TAKEN', 'KIND', 'SIZE', 'KEPT FILES', 'PARENT', 'STATE'],
    images.map((i) => [
      i.id,
      i.session.id,
      i.session.name,
      `${formatDuration(Math.max(0, now - i.time))} ago`,
      i.kind,
      formatBytes(i.bytes),
      i.keptFiles === 0 ? '-' : `${i.keptFiles} (${formatBytes(i.keptBytes)})`,
      i.parent ?? '-',
      i.state === 'ok' ? 'ok' : `damaged: ${i.problem ?? ''}`,
    ]),
  );
}
