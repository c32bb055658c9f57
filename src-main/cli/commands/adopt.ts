import { UsageError, parseArgs } from '../args.js';
import { DEFAULT_DETACH_KEY, attachTerminal, describeKey, exitStatusOf } from '../attach-terminal.js';
import type { Command } from '../command.js';
import { grantThenDrop, sudoInvoker } from '../sudo-adopt.js';
import { reportOutcome } from './attach.js';

export const adoptCommand: Command = {
  name: 'adopt',
  summary: 'take a program running in another terminal over into a session',
  help: `usage: vos adopt PID [--name N] [-d] [--json]

Takes the program PID runs over from the terminal it runs in, with the rest of that terminal's
session (a shell and its jobs), into a new session: it goes on where it was, now on the
session's terminal, listed by vos ls and viewed, typed into and resized like any other. The old
terminal says where it went. On a terminal this attaches to the new session
(${describeKey(DEFAULT_DETACH_KEY)} detaches; the program keeps running); with -d, or where
there is no terminal, it prints the session's id instead.

Only your own programs can be adopted, and only where the kernel lets one program take another
over (ptrace): where kernel.yama.ptrace_scope is 1 (Ubuntu's default), 2 or 3 it is refused with
what to change. Under 1, \`sudo vos adopt PID\` works: as root it only lets your programs trace
the processes of PID's terminal (each gets a ptrace exception), then it gives up root and asks
your agent as you; processes that terminal starts later have no exception. An adopted session is checkpointed and moved like any other: its processes
are stopped from outside (no vOS runtime in them), and a restore puts them into a pod with a
fresh pid namespace, where they keep their pids (their parent is then the pod's first process,
and their session its session).

  --name N    a name for the session (default: the program's)
  -d, --detach        do not attach; print the session id
  --json      the session (does not attach)
`,
  async run(argv, ctx) {
    const { options, positionals } = parseArgs(argv, {
      name: { type: 'string', short: 'n' },
      json: { type: 'boolean' },
      detach: { type: 'boolean', short: 'd' },
    });
    if (positionals.length !== 1 || !/^[1-9]\d{0,9}$/.test(positionals[0]!)) throw new UsageError('give one process id: vos adopt PID');
    const attach = options.detach !== true && options.json !== true && process.stdin.isTTY && process.stdout.isTTY;
    // Under sudo: root's part (ptrace exceptions), then we are the invoking user for good.
    const invoker = sudoInvoker();
    if (invoker) grantThenDrop(Number(positionals[0]), invoker);
    const client = await ctx.connectOrStart();
    try {
      const session = await client.request('session.adopt', {
        pid: Number(positionals[0]),
        ...(typeof options.name === 'string' ? { name: options.name } : {}),
      });
      if (attach) {
        const outcome = await attachTerminal(client, session.id, DEFAULT_DETACH_KEY);
        reportOutcome(outcome, ctx);
        return outcome.reason === 'exited' ? exitStatusOf(outcome.session) : 0;
      }
      ctx.out(options.json ? JSON.stringify(session) + '\n' : session.id + '\n');
      return 0;
    } finally {
      client.close();
    }
  },
};
