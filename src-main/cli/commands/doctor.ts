import { VosError } from '../../api/errors.js';
import type { ApiClient } from '../../api/client.js';
import { UsageError, parseArgs } from '../args.js';
import type { Command } from '../command.js';
import { runDoctorChecks, type DoctorCheck } from '../doctor-checks.js';

export const doctorCommand: Command = {
  name: 'doctor',
  summary: 'what works on this machine, and how to fix what does not',
  help: `usage: vos doctor [--json]

Checks what vOS needs on this machine and says how to fix what is missing: the runtime, the
namespaces a session's pod needs (user, pid, mount, IPC; Ubuntu's AppArmor rule may refuse
them), time namespaces (restored clocks), userfaultfd write-protection and PAGEMAP_SCAN (live
moves, incremental checkpoints), mDNS (finding machines), the peer port and the state
directory. Nothing is changed.

  --json   an array of {name, ok, essential, detail, fix}

Exits 1 when something essential is missing (the runtime, namespaces, the state directory).
`,
  async run(argv, ctx) {
    const { options, positionals } = parseArgs(argv, { json: { type: 'boolean' } });
    if (positionals.length) throw new UsageError('vos doctor takes no arguments');
    let agent: ApiClient | null = null;
    try {
      agent = await ctx.connect();
    } catch (err) {
      if (!(err instanceof VosError && err.code === 'no_agent')) throw err;
    }
    let checks: DoctorCheck[];
    try {
      checks = await runDoctorChecks(ctx.paths().home, agent);
    } finally {
      agent?.close();
    }
    const failed = checks.filter((c) => !c.ok && c.essential);
    if (options.json) {
      ctx.out(JSON.stringify(checks, null, 2) + '\n');
    } else {
      const lines = checks.map((c) => `${(c.ok ? 'ok' : 'MISSING').padEnd(8)} ${c.name}: ${c.detail}\n${c.fix ? `${' '.repeat(9)}fix: ${c.fix}\n` : ''}`);
      const verdict = failed.length
        ? `Missing what vOS needs: ${failed.map((c) => c.name).join(', ')}.\n`
        : checks.every((c) => c.ok)
          ? 'Everything works.\n'
          : 'Everything essential works.\n';
      ctx.out(lines.join('') + verdict);
    }
    return failed.length ? 1 : 0;
  },
};
