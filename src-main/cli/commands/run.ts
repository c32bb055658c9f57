import { VosError } from '../../api/errors.js';
import { UsageError, parseArgs } from '../args.js';
import { DEFAULT_DETACH_KEY, attachTerminal, describeKey, exitStatusOf } from '../attach-terminal.js';
import type { Command } from '../command.js';
import { reportOutcome } from './attach.js';
import { terminalSize } from '../terminal-size.js';

function stringEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  return env;
}

export const runCommand: Command = {
  name: 'run',
  summary: 'start a program in a new session (and attach to it)',
  help: `usage: vos run [--name N] [--detach] [--json] [--cwd DIR] [--] CMD [ARGS...]

Starts CMD in a new session of the agent, with this shell's environment and working
directory, and attaches this terminal to it (${describeKey(DEFAULT_DETACH_KEY)} detaches; the program keeps running).
Starts a background agent first when none is running.

  -n, --name N    a name for the session (default: the command's base name)
  -d, --detach    do not attach; print the session id
      --json      print {"id": ...} (implies nothing else)
      --cwd DIR   working directory (default: the current one)

Attached, vos exits with the program's exit status when it ends.
`,
  async run(argv, ctx) {
    const { options, positionals } = parseArgs(
      argv,
      {
        name: { type: 'string', short: 'n' },
        detach: { type: 'boolean', short: 'd' },
        json: { type: 'boolean' },
        cwd: { type: 'string' },
      },
      { stopAtFirstPositional: true },
    );
    const [command, ...args] = positionals;
    if (!command) throw new UsageError('missing the command to run (vos run [options] -- CMD [ARGS...])');
    const detach = options.detach === true;
    if (!detach && !(process.stdin.isTTY && process.stdout.isTTY)) {
      throw new VosError('invalid_params', 'not a terminal: attaching needs one; add --detach to start the session in the background');
    }
    const client = await ctx.connectOrStart();
    try {
      const size = process.stdout.isTTY ? terminalSize(process.stdout) : {};
      const session = await client.request('session.create', {
        command,
        args,
        cwd: typeof options.cwd === 'string' ? options.cwd : process.cwd(),
        env: stringEnv(),
        ...(typeof options.name === 'string' ? { name: options.name } : {}),
        ...size,
      });
      // Once, before anything else: this machine gives the session no pod, and why.
      if (session.cannotCheckpoint) ctx.err(`vos: this session cannot be checkpointed or moved: ${session.cannotCheckpoint}\n`);
      if (options.json) ctx.out(JSON.stringify({ id: session.id }) + '\n');
      if (detach) {
        if (!options.json) ctx.out(session.id + '\n');
        return 0;
      }
      const outcome = await attachTerminal(client, session.id, DEFAULT_DETACH_KEY);
      reportOutcome(outcome, ctx);
      return outcome.reason === 'exited' ? exitStatusOf(outcome.session) : 0;
    } finally {
      client.close();
    }
  },
};
