import { parseArgs, UsageError } from '../args.js';
import { DEFAULT_DETACH_KEY, attachTerminal, describeKey, exitStatusOf, parseDetachKey, type AttachOutcome } from '../attach-terminal.js';
import type { Command, CommandContext } from '../command.js';
import { describeExit } from '../../api/session-text.js';
import { peerName, sessionRef } from '../format.js';

export function reportOutcome(outcome: AttachOutcome, ctx: CommandContext): void {
  const s = outcome.session;
  const ref = sessionRef(s);
  if (outcome.reason === 'detached') ctx.err(`[detached from session ${ref}; it keeps running: vos attach ${ref}]\n`);
  else if (outcome.reason === 'exited') ctx.err(`[session ${ref} ended: ${describeExit(s.exit)}]\n`);
  else if (s.peer) ctx.err(`[lost the link to ${peerName(s.peer.name)}; session ${ref} may still be running there]\n`);
  else ctx.err(`[lost the connection to the agent; session ${ref} may still be running]\n`);
}

export const attachCommand: Command = {
  name: 'attach',
  summary: 'attach this terminal to a session',
  help: `usage: vos attach ID [--detach-key KEY]

Shows the session's screen in this terminal and sends your keys to it. The session takes this
terminal's size while you use it (the app's windows that watch it show it letterboxed). ${describeKey(DEFAULT_DETACH_KEY)} detaches and leaves the program running.

  ID                    session id, unique id prefix or name; ID@MACHINE for a
                        session of a paired machine
  --detach-key KEY      another detach key: ^X notation (e.g. ^]) or one character
`,
  async run(argv, ctx) {
    const { options, positionals } = parseArgs(argv, { 'detach-key': { type: 'string' } });
    if (positionals.length !== 1) throw new UsageError('give exactly one session: vos attach ID');
    const key = typeof options['detach-key'] === 'string' ? parseDetachKey(options['detach-key']) : DEFAULT_DETACH_KEY;
    const client = await ctx.connect();
    try {
      const outcome = await attachTerminal(client, positionals[0]!, key);
      reportOutcome(outcome, ctx);
      return outcome.reason === 'exited' ? exitStatusOf(outcome.session) : 0;
    } finally {
      client.close();
    }
  },
};
