/** Commands about the agent itself: status, web, daemon (and daemon stop). */
import { format } from 'node:util';
import { VosError } from '../../api/errors.js';
import type { AgentStopResult } from '../../api/protocol.js';
import { AgentLog, LOG_MAX_BYTES } from '../../agent/agent-log.js';
import { DEFAULT_PEER_PORT, parseHostPort } from '../../agent/community/addresses.js';
import { UsageError, parseArgs, requireInt } from '../args.js';
import type { Command } from '../command.js';

export const statusCommand: Command = {
  name: 'status',
  summary: 'show the running agent',
  help: `usage: vos status [--json]

Shows the agent of this state directory (VOS_HOME): its name, pid, socket and web UI address.
Exits 1 when no agent is running.
`,
  async run(argv, ctx) {
    const { options, positionals } = parseArgs(argv, { json: { type: 'boolean' } });
    if (positionals.length) throw new UsageError('vos status takes no arguments');
    const client = await ctx.connect();
    try {
      const info = await client.request('agent.info', {});
      if (options.json) {
        ctx.out(JSON.stringify(info, null, 2) + '\n');
      } else {
        ctx.out(
          `agent    ${info.name} (pid ${info.pid}, vOS ${info.version}, protocol ${info.protocol})\n` +
            `home     ${info.home}\n` +
            `socket   ${ctx.paths().socket}\n` +
            `web UI   ${info.webUrl ?? 'off (vos web turns it on)'}\n` +
            `machine  ${info.shortId} (${info.id})\n` +
            `peers    ${info.listen ? `reach it at ${info.listen}` : 'cannot reach it'}; mDNS ${info.mdns ? 'on' : 'off'}\n`,
        );
      }
      return 0;
    } finally {
      client.close();
    }
  },
};

export const webCommand: Command = {
  name: 'web',
  summary: 'turn on the web UI of the running agent and print its address',
  help: `usage: vos web [--port PORT]

Serves the app's UI on http://127.0.0.1:PORT from the running agent and prints its address,
with the access token. Without --port: the port it had last time in this state directory
(else any free one). Port and token stay the same across restarts of the agent (web.json), so
an open page reconnects by itself. Already on: prints the address.
`,
  async run(argv, ctx) {
    const { options, positionals } = parseArgs(argv, { port: { type: 'string', short: 'p' } });
    if (positionals.length) throw new UsageError('vos web takes no arguments');
    const port = typeof options.port === 'string' ? requireInt(options.port, 'PORT', 0, 65535) : undefined;
    const client = await ctx.connect();
    try {
      const { url } = await client.request('agent.web', port === undefined ? {} : { port });
      ctx.out(url + '\n');
      return 0;
    } finally {
      client.close();
    }
  },
};

export const daemonCommand: Command = {
  name: 'daemon',
  summary: 'run the agent in the foreground (vos daemon stop: stop the running agent)',
  help: `usage: vos daemon [--name NAME] [--web [PORT]] [--listen HOST:PORT | --listen none] [--no-mdns]
                  [--log FILE]
       vos daemon stop [--checkpoint [--timeout SECONDS]] [--end]

Runs the agent of this state directory (VOS_HOME) in the foreground until interrupted
(Ctrl-C, SIGTERM) or asked to stop (vos daemon stop). Sessions do not end with it: each
program runs under a terminal host of its own and goes on; the next agent of this state
directory finds them again, with their screens. vos kill or vos rm --force ends a session.
(Where the native runtime is not built, sessions do end with the agent.)

vos daemon stop waits until the agent has stopped. Before a planned shutdown (a reboot; the
systemd user unit runs it as its stop):
  --checkpoint        first writes an image of every running session into the store (kind
                      before-shutdown), all within SECONDS (--timeout, default 30); after a
                      reboot, vos ls lists them as recoverable and vos recover --all brings
                      them back. Exits 1 when a session could not be checkpointed (named,
                      with why); the agent stops anyway
  --end               ends every session before stopping (after the checkpoint: those
                      checkpointed stay recoverable for the next agent)

  --name NAME         the name other machines and the app show (default: the host name)
  --web [PORT]        serve the app's UI on http://127.0.0.1:PORT (default: the port it had
                      last time, else any free port) and print its address with the access
                      token (kept in web.json: open pages reconnect after a restart)
  --listen HOST:PORT  where other machines' agents reach this one (default 0.0.0.0:${DEFAULT_PEER_PORT},
                      or any free port when another agent here has it; env VOS_LISTEN);
                      "none": only outgoing links
  --no-mdns           neither publish this machine nor browse for others with mDNS (env
                      VOS_MDNS=0); vos peer add HOST:PORT still works
  --log FILE          write the log to FILE instead of stderr; past ${LOG_MAX_BYTES / 1024 / 1024} MiB it moves to
                      FILE.1 and FILE starts anew (a background agent logs to agent.log)

The log is kept small either way: a message repeated at once is counted, not repeated, and
at most a few hundred lines a minute are written.
`,
  async run(argv, ctx) {
    if (argv[0] === 'stop') return stopDaemon(argv.slice(1), ctx);
    const { options, positionals } = parseArgs(argv, {
      name: { type: 'string' },
      web: { type: 'string', optionalValue: true, valuePattern: /^\d+$/ },
      listen: { type: 'string' },
      'no-mdns': { type: 'boolean' },
      log: { type: 'string' },
    });
    if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const webPort = options.web === undefined ? null : options.web === '' ? 0 : requireInt(options.web as string, 'PORT', 0, 65535);
    const agentLog = new AgentLog(typeof options.log === 'string' ? { file: options.log } : { write: ctx.err });
    const log = (m: string): void => agentLog.log(m);
    // Libraries that print on the console go through the same limits.
    for (const level of ['log', 'info', 'warn', 'error', 'debug'] as const) console[level] = (...args: unknown[]) => log(format(...args));
    let requestStop: (why: string) => void = () => undefined;
    // Loaded here, not at the top: the agent's modules take most of a second to load, and every
    // other command (which only talks to an agent) starts without them.
    const { Agent } = await import('../../agent/agent.js');
    const agent = await Agent.start({
      home: ctx.paths().home,
      onStopRequest: () => requestStop('asked to stop (vos daemon stop)'),
      ...(typeof options.name === 'string' ? { name: options.name } : {}),
      webPort,
      log,
      ...(typeof options.listen === 'string' ? { listen: options.listen === 'none' ? null : parseHostPort(options.listen, DEFAULT_PEER_PORT, true) } : {}),
      ...(options['no-mdns'] ? { mdns: false } : {}),
    });
    const info = agent.info();
    // One write, so that whoever reads the first line (scripts, tests) has the rest with it.
    ctx.out(
      `vos agent "${info.name}" running (pid ${info.pid}); socket ${agent.paths.socket}\n` +
        `machine id ${info.shortId}; peers ${info.listen ? `reach it at ${info.listen}` : 'cannot reach it (--listen none)'}; mDNS ${info.mdns ? 'on' : 'off'}\n` +
        (info.webUrl ? `web UI: ${info.webUrl}\n` : ''),
    );

    // An agent holds people's programs: an unexpected error is logged, not allowed to kill them all.
    process.on('uncaughtException', (err) => log(`unexpected error (agent keeps running): ${err.stack ?? String(err)}`));
    process.on('unhandledRejection', (err) => log(`unexpected rejection (agent keeps running): ${String(err)}`));

    await new Promise<void>((resolve) => {
      let stopping = false;
      const stop = (why: string): void => {
        if (stopping) return;
        stopping = true;
        log(`${why}: stopping; the sessions keep running`);
        agent.stop().then(resolve, (err: unknown) => {
          log(`error while stopping: ${err instanceof VosError ? err.message : String(err)}`);
          resolve();
        });
      };
      requestStop = stop;
      for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(s, () => stop(s));
    });
    agentLog.close();
    return 0;
  },
};

/**
 * `vos daemon stop [--checkpoint [--timeout S]] [--end]`: asks the running agent to stop (after
 * checkpointing and/or ending its sessions) and waits until it has.
 */
async function stopDaemon(argv: string[], ctx: Parameters<Command['run']>[1]): Promise<number> {
  const { options, positionals } = parseArgs(argv, { checkpoint: { type: 'boolean' }, end: { type: 'boolean' }, timeout: { type: 'string' } });
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  let timeoutMs: number | undefined;
  if (typeof options.timeout === 'string') {
    if (!options.checkpoint) throw new UsageError('--timeout bounds the checkpoint: it goes with --checkpoint');
    timeoutMs = requireInt(options.timeout, 'SECONDS', 1, 600) * 1000;
  }
  const client = await ctx.connect();
  let pid: number;
  let result: AgentStopResult;
  try {
    pid = (await client.request('agent.info', {})).pid;
    result = await client.request('agent.stop', {
      ...(options.checkpoint ? { checkpointFirst: true } : {}),
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      ...(options.end ? { endSessions: true } : {}),
    });
  } finally {
    client.close();
  }
  if (options.checkpoint) {
    ctx.out(`checkpointed ${result.checkpointed.length} of ${result.checkpointed.length + result.failed.length} sessions${result.checkpointed.length ? `: ${result.checkpointed.join(', ')}` : ''}\n`);
    for (const f of result.failed) ctx.err(`vos: could not checkpoint session ${f.id}: ${f.reason}\n`);
  }
  const deadline = Date.now() + 20_000;
  while (isAlive(pid)) {
    if (Date.now() > deadline) throw new VosError('timeout', `the agent (pid ${pid}) did not stop within 20 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
  ctx.out(
    options.end
      ? `agent stopped (pid ${pid}); its sessions have ended${options.checkpoint ? '; those checkpointed are recoverable with the next agent (vos recover --all)' : ''}\n`
      : `agent stopped (pid ${pid}); its sessions keep running; the next agent (vos daemon, or vos run) finds them again\n`,
  );
  return result.failed.length > 0 ? 1 : 0;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
