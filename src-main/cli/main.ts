/**
 * The `vos` command: parses the subcommand, runs it, maps failures to a message on stderr and a
 * non-zero exit status (1: the operation failed; 2: the command line was wrong).
 */
import { VosError } from '../api/errors.js';
import { packageVersion } from '../base/package-paths.js';
import { resolveHome, statePaths, type StatePaths } from '../base/state-dir.js';
import { connectOrStartAgent } from '../client/background-agent.js';
import { connectToAgent } from '../client/socket-transport.js';
import { UsageError } from './args.js';
import type { Command, CommandContext } from './command.js';
import { attachCommand } from './commands/attach.js';
import { adoptCommand } from './commands/adopt.js';
import { checkpointCommand, imagesCommand, restoreCommand } from './commands/images.js';
import { daemonCommand, statusCommand, webCommand } from './commands/agent.js';
import { doctorCommand } from './commands/doctor.js';
import { migrateCommand } from './commands/migrate.js';
import { recoverCommand } from './commands/recover.js';
import { pairCommand, peerCommand, peersCommand, unpairCommand } from './commands/peers.js';
import { runCommand } from './commands/run.js';
import { serviceCommand } from './commands/service.js';
import { scheduleCommand } from './commands/schedule.js';
import {
  killCommand,
  lsCommand,
  resizeCommand,
  rmCommand,
  screenCommand,
  sendCommand,
  waitCommand,
} from './commands/sessions.js';

const COMMANDS: Command[] = [
  runCommand,
  lsCommand,
  attachCommand,
  sendCommand,
  screenCommand,
  waitCommand,
  resizeCommand,
  killCommand,
  rmCommand,
  checkpointCommand,
  restoreCommand,
  recoverCommand,
  adoptCommand,
  imagesCommand,
  scheduleCommand,
  migrateCommand,
  peersCommand,
  peerCommand,
  pairCommand,
  unpairCommand,
  statusCommand,
  webCommand,
  daemonCommand,
  doctorCommand,
  serviceCommand,
];

const ALIASES: Record<string, string> = { list: 'ls', remove: 'rm' };

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `usage: vos COMMAND [ARGS...]

vOS runs terminal programs in sessions held by an agent, so they outlive the terminal that
started them and can be watched and driven from the app, the web UI or scripts, on this
machine or, once paired, from the other machines of the network (ID@MACHINE).

${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

'vos COMMAND --help' tells more. VOS_HOME selects the agent (its state directory; default
$XDG_STATE_HOME/vos or ~/.local/state/vos).
`;
}

function makeContext(): CommandContext {
  let paths: StatePaths | null = null;
  const getPaths = (): StatePaths => (paths ??= statePaths(resolveHome()));
  return {
    paths: getPaths,
    connect: async () => {
      try {
        return await connectToAgent(getPaths().socket, 'vos-cli');
      } catch (err) {
        if (err instanceof VosError && err.code === 'no_agent') {
          throw new VosError(
            'no_agent',
            `no agent is running for ${getPaths().home}; start one with 'vos daemon' (or 'vos run' starts one in the background)`,
          );
        }
        throw err;
      }
    },
    connectOrStart: () => connectOrStartAgent(getPaths(), 'vos-cli'),
    out: (t) => void process.stdout.write(t),
    err: (t) => void process.stderr.write(t),
  };
}

export async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    const topic = first === 'help' ? rest[0] : undefined;
    const cmd = topic ? COMMANDS.find((c) => c.name === (ALIASES[topic] ?? topic)) : undefined;
    process.stdout.write(cmd ? cmd.help : mainHelp());
    return first === undefined ? 2 : 0;
  }
  if (first === '--version' || first === '-V') {
    process.stdout.write(`vos ${packageVersion()}\n`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === (ALIASES[first] ?? first));
  if (!command) {
    process.stderr.write(`vos: unknown command "${first}" (vos --help lists them)\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    // Not after "--" in `vos run`, where it belongs to the program.
    const dashdash = rest.indexOf('--');
    const help = rest.findIndex((a) => a === '--help' || a === '-h');
    if (dashdash < 0 || help < dashdash) {
      process.stdout.write(command.help);
      return 0;
    }
  }
  try {
    return await command.run(rest, makeContext());
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`vos ${command.name}: ${err.message}\n(vos ${command.name} --help shows the usage)\n`);
      return 2;
    }
    if (err instanceof VosError) {
      process.stderr.write(`vos ${command.name}: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(`vos ${command.name}: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}

/**
 * Resolves once everything written to stdout and stderr has left the process. Writes to a pipe
 * are asynchronous in Node once the pipe is full (64 KiB), so exiting at once cut `vos ls --json |
 * slow-reader` short, with status 0. A reader that went away (EPIPE) counts as flushed.
 */
export async function flushStdio(): Promise<void> {
  await Promise.all(
    [process.stdout, process.stderr].map(
      (stream) =>
        new Promise<void>((resolve) => {
          if (stream.destroyed || stream.writableLength === 0) {
            resolve();
            return;
          }
          stream.once('error', () => resolve());
          // An empty write's callback runs after every write queued before it.
          stream.write('', () => resolve());
        }),
    ),
  );
}
