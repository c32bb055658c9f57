/**
 * The systemd user unit of the agent (`vos service install`): `vos daemon` as this user's
 * service, named by absolute paths (the user manager's PATH need not know node or vos).
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export const UNIT_NAME = 'vos-agent.service';

/** ~/.config/systemd/user (or under $XDG_CONFIG_HOME). */
export function userUnitDir(env: NodeJS.ProcessEnv = process.env): string {
  const config = env.XDG_CONFIG_HOME ? resolve(env.XDG_CONFIG_HOME) : join(homedir(), '.config');
  return join(config, 'systemd', 'user');
}

/** systemd's quoting of one word of a unit's command line or setting (% is a specifier there). */
function quoteWord(word: string): string {
  const w = word.replace(/%/g, '%%');
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(w)) return w;
  return `"${w.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\$/g, '$$$$')}"`;
}

function commandLine(words: string[]): string {
  return words.map(quoteWord).join(' ');
}

/** The unit's text: `node` runs `script` (bin/vos.js); `home`: a VOS_HOME to pin, if any. */
export function agentUnit(options: { node: string; script: string; home?: string | null }): string {
  const { node, script, home } = options;
  const env = home ? `Environment=${quoteWord(`VOS_HOME=${home}`)}\n` : '';
  return `# The vOS agent of this user (vos daemon), written by \`vos service install\`; \`vos service
# uninstall\` removes it. Stopping or restarting it stops the agent only: sessions go on, and the
# next agent finds them.
[Unit]
Description=vOS agent: keeps this user's terminal sessions (vos daemon)

[Service]
Type=simple
${env}ExecStart=${commandLine([node, script, 'daemon'])}
# Before the agent stops (a reboot, systemctl --user stop): every running session is checkpointed
# into the image store first, so that after a reboot vos recover --all brings them back.
ExecStop=${commandLine([node, script, 'daemon', 'stop', '--checkpoint', '--timeout', '60'])}
TimeoutStopSec=90
# Each session runs under a terminal host of its own, in this unit's cgroup: stopping the unit
# must not end them. (systemd may warn that KillMode=process is unusual: it is meant.)
KillMode=process
Restart=on-failure

[Install]
WantedBy=default.target
`;
}
