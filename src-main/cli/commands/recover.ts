/** vos recover: brings back sessions whose program is gone (pod killed, machine rebooted). */
import { resolve } from 'node:path';
import { UsageError, parseArgs } from '../args.js';
import type { Command } from '../command.js';

export const OLDER_IMAGE_HELP = `An image is a moment in the past: the restored program's memory goes back to that moment,
but the files it wrote since then do not (what is on disk now is what it sees; a store image
puts back its kept copies of small open files only where they are missing). The older the
image, the further back the program goes, and the more it may disagree with its files.`;

export const recoverCommand: Command = {
  name: 'recover',
  summary: 'bring back sessions whose program is gone (pod killed, machine rebooted)',
  help: `usage: vos recover ID [--take-as-is PATH]... [--json]
       vos recover --all [--json]

When the agent starts and finds that a session it knew is gone without having ended (its
terminal host and pod were killed, the machine rebooted), vos ls lists it as "recoverable"
with the age of its latest image in the store. vos recover restores that image into a
session with the same name, and the same id when that is free. When the latest image is
damaged or does not restore, the one before it is used, and so on; the session's note
(printed here, and in vos ls --json as restoreNote) says which and why. vos rm ID forgets a
recoverable session (its images stay: vos images).

${OLDER_IMAGE_HELP}

  ID        a recoverable session: id, unique id prefix or name
  --all     every recoverable session; fails (exit 1) if any could not be recovered,
            naming each with why, after trying all of them
  --take-as-is PATH   a kept file the program may use as it is now (repeatable; with ID):
            a file the program rewrites whole (a REPL's history) that has other content
            now refuses the recovery, naming this option, as vos restore does
  --json    the recovered sessions as JSON (as vos ls --json)

Images come from vos checkpoint, from schedules, and from vos daemon stop --checkpoint
(before a shutdown). A session without any image cannot be recovered and is not listed.
`,
  async run(argv, ctx) {
    const { options, positionals, lists } = parseArgs(argv, {
      all: { type: 'boolean', short: 'a' },
      json: { type: 'boolean' },
      'take-as-is': { type: 'string', repeatable: true },
    });
    if (options.all ? positionals.length !== 0 : positionals.length !== 1) {
      throw new UsageError('give one session (vos recover ID) or --all');
    }
    const takeAsIs = lists['take-as-is']?.map((p) => resolve(p));
    if (takeAsIs && options.all) throw new UsageError('--take-as-is goes with one session (vos recover ID --take-as-is PATH), not with --all');
    const client = await ctx.connect();
    try {
      const back = await client.request('session.recover', options.all ? { all: true } : { id: positionals[0]!, ...(takeAsIs ? { takeAsIs } : {}) });
      if (options.json) ctx.out(JSON.stringify(back, null, 2) + '\n');
      else if (back.length === 0) ctx.out('no recoverable sessions\n');
      else for (const s of back) ctx.out(`${s.id}  ${s.name}  recovered\n`);
      for (const s of back) if (s.restoreNote) ctx.err(`vos: note: ${s.id}: ${s.restoreNote}\n`);
      return 0;
    } finally {
      client.close();
    }
  },
};
