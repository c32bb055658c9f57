/** `vos service install|uninstall|status`: the agent as a systemd user service (service-unit.ts). */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { cliEntry } from '../../base/package-paths.js';
import { UsageError, parseArgs } from '../args.js';
import type { Command, CommandContext } from '../command.js';
import { UNIT_NAME, agentUnit, userUnitDir } from '../service-unit.js';

/** systemctl on PATH, or null. */
function findSystemctl(): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, 'systemctl'))) return join(dir, 'systemctl');
  }
  return null;
}

/** Runs `systemctl --user ARGS`: null when it worked, else why not. */
function systemctl(path: string, args: string[]): Promise<string | null> {
  return new Promise((resolve) => {
    execFile(path, ['--user', ...args], { timeout: 30_000 }, (error, _stdout, stderr) => resolve(error ? stderr.trim() || error.message : null));
  });
}

/** Runs each command in turn with systemctl --user, or says what to run when that cannot be done. */
async function manage(ctx: CommandContext, steps: string[][], what: string): Promise<number> {
  const shown = steps.map((s) => `systemctl --user ${s.join(' ')}`).join(' && ');
  const path = findSystemctl();
  if (!path) {
    ctx.out(`systemctl is not available here: to ${what}, run (where systemd runs your user session):\n  ${shown}\n`);
    return 0;
  }
  for (const step of steps) {
    const failed = await systemctl(path, step);
    if (failed) {
      ctx.err(`vos: systemctl --user ${step.join(' ')} failed: ${failed}\nto ${what}, run in your desktop session: ${shown}\n`);
      return 1;
    }
  }
  ctx.out(`done: ${shown}\n`);
  return 0;
}

export const serviceCommand: Command = {
  name: 'service',
  summary: 'run the agent as a systemd user service (install, uninstall, status)',
  help: `usage: vos service install | uninstall | status

  install     writes ${UNIT_NAME} into ~/.config/systemd/user (or $XDG_CONFIG_HOME's) naming
              this node and this checkout's bin/vos.js by absolute path (and VOS_HOME when it
              is set), then enables and starts it with systemctl --user (or says what to run
              where systemctl --user is not available)
  uninstall   disables and stops it, and removes the file; sessions go on
  status      whether it is installed, and systemctl --user's view of it

The unit stops the agent only (its sessions go on; the next agent finds them), checkpointing
every session first. For the agent to run without a login: loginctl enable-linger "$USER".
`,
  async run(argv, ctx) {
    const { positionals } = parseArgs(argv, {});
    const [action, ...rest] = positionals;
    if (rest.length || !action) throw new UsageError('usage: vos service install | uninstall | status');
    const file = join(userUnitDir(), UNIT_NAME);
    if (action === 'install') {
      mkdirSync(userUnitDir(), { recursive: true });
      writeFileSync(file, agentUnit({ node: process.execPath, script: cliEntry(), home: process.env.VOS_HOME ?? null }));
      ctx.out(`wrote ${file}\n`);
      return manage(ctx, [['daemon-reload'], ['enable', '--now', UNIT_NAME]], 'enable and start it');
    }
    if (action === 'uninstall') {
      if (!existsSync(file)) {
        ctx.out(`${file} is not there: nothing to uninstall\n`);
        return 0;
      }
      const code = await manage(ctx, [['disable', '--now', UNIT_NAME]], 'stop and disable it');
      rmSync(file, { force: true });
      ctx.out(`removed ${file}\n`);
      const reload = findSystemctl();
      if (reload) await systemctl(reload, ['daemon-reload']);
      return code;
    }
    if (action === 'status') {
      if (!existsSync(file)) {
        ctx.out(`not installed (${file} is not there; vos service install writes it)\n`);
        return 1;
      }
      const exec = /^ExecStart=(.*)$/m.exec(readFileSync(file, 'utf8'))?.[1] ?? '?';
      ctx.out(`installed: ${file}\n  ExecStart=${exec}\n`);
      const path = findSystemctl();
      if (!path) ctx.out('systemctl is not available here: its state is unknown\n');
      else {
        const state = await new Promise<string>((resolve) =>
          execFile(path, ['--user', 'is-active', UNIT_NAME], { timeout: 30_000 }, (_e, stdout, stderr) => resolve((stdout.trim() || stderr.trim() || 'unknown'))),
        );
        ctx.out(`systemctl --user is-active: ${state}\n`);
      }
      return 0;
    }
    throw new UsageError(`unknown action ${action} (install, uninstall or status)`);
  },
};
