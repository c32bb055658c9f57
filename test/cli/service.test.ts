/**
 * `vos service install|uninstall|status` writes and removes the agent's systemd user unit. It
 * never calls systemctl here: PATH names an empty directory, as on a machine without systemd,
 * and install then says what to run. Where systemd-analyze is installed, the written unit is
 * checked by systemd's own parser.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { agentUnit } from '../../src-main/cli/service-unit.js';
import { ROOT } from '../helpers/agent-process.js';

const VOS = join(ROOT, 'bin', 'vos.js');
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function service(dir: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // No systemctl on this PATH (an empty directory): nothing outside the test's directory is touched.
    execFile(process.execPath, [VOS, 'service', ...args], { env: { HOME: dir, PATH: join(dir, 'empty-bin'), XDG_CONFIG_HOME: join(dir, 'config'), ...env }, timeout: 30_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
    );
  });
}

describe('vos service', () => {
  it('installs the unit with absolute paths, says what to run without systemctl, and uninstalls it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vos-service-'));
    dirs.push(dir);
    const unit = join(dir, 'config', 'systemd', 'user', 'vos-agent.service');
    expect((await service(dir, ['status'])).code).toBe(1);

    const install = await service(dir, ['install'], { VOS_HOME: join(dir, 'state dir') });
    expect(install.code, install.stderr).toBe(0);
    expect(install.stdout).toContain(`wrote ${unit}`);
    expect(install.stdout).toContain('systemctl is not available here');
    expect(install.stdout).toContain('systemctl --user daemon-reload && systemctl --user enable --now vos-agent.service');
    const text = readFileSync(unit, 'utf8');
    expect(text).toContain(`ExecStart=${process.execPath} ${VOS} daemon\n`);
    expect(text).toContain(`ExecStop=${process.execPath} ${VOS} daemon stop --checkpoint --timeout 60\n`);
    expect(text).toContain(`Environment="VOS_HOME=${join(dir, 'state dir')}"\n`);
    expect(text).toMatch(/^KillMode=process$/m);
    expect(text).toMatch(/^WantedBy=default.target$/m);

    const status = await service(dir, ['status']);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`ExecStart=${process.execPath} ${VOS} daemon`);

    const uninstall = await service(dir, ['uninstall']);
    expect(uninstall.code).toBe(0);
    expect(uninstall.stdout).toContain('systemctl --user disable --now vos-agent.service');
    expect(existsSync(unit)).toBe(false);
    expect((await service(dir, ['bogus'])).code).toBe(2);
  });

  it('quotes what systemd would read otherwise', () => {
    const text = agentUnit({ node: '/opt/my node/node', script: '/x/100%/bin/vos.js', home: '/h/$HOME "q"' });
    expect(text).toContain('ExecStart="/opt/my node/node" /x/100%%/bin/vos.js daemon\n');
    expect(text).toContain('Environment="VOS_HOME=/h/$$HOME \\"q\\""\n');
  });

  it.skipIf(spawnSync('systemd-analyze', ['--version']).status !== 0)("passes systemd-analyze verify (systemd's own parser)", () => {
    const dir = mkdtempSync(join(tmpdir(), 'vos-service-'));
    dirs.push(dir);
    const file = join(dir, 'vos-agent.service');
    writeFileSync(file, agentUnit({ node: process.execPath, script: VOS, home: join(dir, 'h') }));
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', file], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/vos-agent\.service:\d+:/); // no complaint about a line of ours
  });
});

