/**
 * `npm run dist` cannot run here (Electron's binary cannot be downloaded), so what can be checked
 * is checked: electron-builder.yml against electron-builder's own JSON schema, that every file
 * the app needs at run time is packed (and the runtime outside the archive, where the packaged app
 * looks for it), the AppArmor profile (compiled by apparmor_parser where installed, as far as its
 * version knows the rules), and the .deb's maintainer scripts (sh -n, and shellcheck where
 * installed) as electron-builder fills them in. The validator and the YAML reader (js-yaml)
 * are electron-builder's own.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { minimatch } from 'minimatch';
import { afterAll, describe, expect, it } from 'vitest';
import { runtimeDirFor } from '../../src-main/base/package-paths.js';
import { ROOT } from '../helpers/agent-process.js';

const require = createRequire(import.meta.url);
// Untyped CommonJS packages: only what is used here.
const yaml = require('js-yaml') as { load(text: string): unknown };

interface FileSet {
  from: string;
  to: string;
  filter?: string[];
}
interface BuilderConfig {
  files: string[];
  asarUnpack: string[];
  extraResources: FileSet[];
  linux: { executableName: string; icon: string; target: Array<{ target: string; arch: string[] }>; desktop: { entry: Record<string, string> } };
  deb: { appArmorProfile: string; afterInstall: string; afterRemove: string; fpm: string[]; depends: string[] };
}

const config = yaml.load(readFileSync(join(ROOT, 'electron-builder.yml'), 'utf8')) as BuilderConfig;
const packageJson = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { main: string };

/** Whether electron-builder's `files` would pack `path` (patterns in order, "!" excludes). */
function packed(path: string): boolean {
  let inside = false;
  for (const p of config.files) {
    if (p.startsWith('!')) {
      if (minimatch(path, p.slice(1), { dot: true })) inside = false;
    } else if (minimatch(path, p, { dot: true })) inside = true;
  }
  return inside;
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('electron-builder.yml', () => {
  it("is valid by electron-builder's schema, checked as electron-builder checks it", () => {
    const schema = JSON.parse(readFileSync(join(ROOT, 'node_modules', 'app-builder-lib', 'scheme.json'), 'utf8')) as object;
    // electron-builder's own validator (ajv over scheme.json), which `npm run dist` runs first.
    const { validateSchema } = require('app-builder-lib/out/util/config/schemaValidator.js') as { validateSchema(schema: object, data: unknown): void };
    expect(() => validateSchema(schema, structuredClone(config))).not.toThrow();
    // And it does reject what the schema forbids (an unknown key, a wrong type).
    expect(() => validateSchema(schema, { ...structuredClone(config), notAnOption: 1 })).toThrow(/notAnOption/);
    expect(() => validateSchema(schema, { ...structuredClone(config), deb: { ...config.deb, afterInstall: { a: 1 } } })).toThrow(/afterInstall/);
  });

  it('builds an AppImage and a .deb for x64', () => {
    expect(config.linux.target).toEqual([
      { target: 'AppImage', arch: ['x64'] },
      { target: 'deb', arch: ['x64'] },
    ]);
  });

  it('packs every file the app needs at run time (after npm run build)', () => {
    const needed = [
      'package.json',
      packageJson.main, // out/main/index.js
      'out/preload/index.mjs',
      'out/renderer/index.html',
      'bin/vos.js', // the agent and the CLI, run by Electron as Node
      'out/node/src-main/cli/main.js',
      'out/node/src-main/agent/agent.ts'.replace(/\.ts$/, '.js'),
      'resources/icon.png',
      'resources/tray.png',
      'resources/tray@2x.png',
    ];
    for (const f of needed) {
      expect(existsSync(join(ROOT, f)), `${f} is built`).toBe(true);
      expect(packed(f), `${f} is packed`).toBe(true);
    }
    // The whole renderer (its assets) and the agent's modules.
    for (const f of ['out/renderer/assets/x.js', 'out/node/src-main/agent/runtime/host-probe.js', 'out/node/src-main/base/package-paths.js']) {
      expect(packed(f), f).toBe(true);
    }
    // Not what only a checkout needs.
    for (const f of ['out/runtime/vos-init', 'out/runtime/obj/init/main.o', 'out/node/test/unit/packaging.test.js', 'src-main/cli/main.ts']) {
      expect(packed(f), `${f} is not in the archive`).toBe(false);
    }
    // The renderer's HTML names only files that are built (and so packed).
    const html = readFileSync(join(ROOT, 'out/renderer/index.html'), 'utf8');
    for (const [, src] of html.matchAll(/(?:src|href)="\.?\/?([^"]+)"/g)) {
      expect(existsSync(join(ROOT, 'out/renderer', src!)), src).toBe(true);
      expect(packed(`out/renderer/${src}`), src).toBe(true);
    }
  });

  it('puts the runtime outside the archive, where the packaged app looks for it', () => {
    const runtime = config.extraResources.find((r) => r.from === 'out/runtime');
    expect(runtime).toBeDefined();
    expect(runtime!.filter).toEqual(expect.arrayContaining(['vos-init', 'libvos.so']));
    for (const f of runtime!.filter!) {
      const file = join(ROOT, runtime!.from, f);
      expect(existsSync(file), `${file} (npm run build:runtime)`).toBe(true);
    }
    expect(statSync(join(ROOT, 'out/runtime/vos-init')).mode & 0o111).not.toBe(0);
    // resources/app.asar → resources/<to>: where the profile and the /usr/bin/vos wrapper name it.
    expect(runtimeDirFor('/opt/vOS/resources/app.asar')).toBe(`/opt/vOS/resources/${runtime!.to}`);
    expect(runtimeDirFor(ROOT)).toBe(join(ROOT, 'out', 'runtime'));
    // node-pty's native parts are unpacked.
    expect(config.asarUnpack.some((p) => minimatch('node_modules/@lydell/node-pty-linux-x64/prebuilds/linux-x64/pty.node', p))).toBe(true);
  });

  it('has a desktop entry and icons', () => {
    const entry = config.linux.desktop.entry;
    expect(entry.Name).toBe('vOS');
    expect(entry.StartupWMClass).toBe('vOS');
    expect(entry.Categories).toMatch(/System;/);
    const png = readFileSync(join(ROOT, config.linux.icon));
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect(png.readUInt32BE(16)).toBeGreaterThanOrEqual(256); // electron-builder wants 256x256 at least
  });
});

describe('the .deb', () => {
  /** A template as electron-builder fills it in (FpmTarget's writeConfigFile): every ${name} known. */
  function fill(template: string): string {
    const values: Record<string, string> = { executable: config.linux.executableName, sanitizedProductName: 'vOS', productFilename: 'vOS' };
    return readFileSync(join(ROOT, template), 'utf8').replace(/\${([a-zA-Z]+)}/g, (_m, name: string) => {
      if (!(name in values)) throw new Error(`${template}: macro ${name} is not defined (electron-builder would fail)`);
      return values[name]!;
    });
  }

  it("installs an AppArmor profile granting userns to the packaged vos-init (and the app)", () => {
    const profile = fill(config.deb.appArmorProfile);
    const vosInit = /profile vos-init "([^"]+)"[^{]*\{([^}]*)\}/.exec(profile);
    expect(vosInit, profile).not.toBeNull();
    expect(vosInit![1]).toBe(`${runtimeDirFor('/opt/vOS/resources/app.asar')}/vos-init`);
    expect(vosInit![2]).toMatch(/^\s*userns,$/m);
    expect(profile).toMatch(/profile "vos-app" "\/opt\/vOS\/vos-app"[^{]*\{[^}]*userns,/);
    // The `userns` rule came with AppArmor 4 (its abi/4.0): the profile says so, for the parser.
    expect(profile).toMatch(/^abi <abi\/4\.0>,$/m);
  });

  /**
   * apparmor_parser as the after-install runs it before installing the profile: the whole
   * profile compiled (syntax, includes, rules, patterns) and not loaded into the kernel (-Q),
   * with no cache read or written (-K). (`--debug` would stop before the patterns are compiled:
   * a broken pattern passes it and then fails to load at boot.)
   */
  const PARSE = ['--skip-kernel-load', '--skip-cache'];
  // Debian puts it in /usr/sbin, which a user's PATH may not have.
  const parser = ['apparmor_parser', '/usr/sbin/apparmor_parser'].find((p) => spawnSync(p, ['--version']).status === 0);
  const parserVersion = parser ? (/version (\S+)/.exec(spawnSync(parser, ['--version'], { encoding: 'utf8' }).stdout)?.[1] ?? '?') : null;
  if (!parser) console.log('test/unit/packaging.test.ts: apparmor_parser is not installed (Debian: apparmor); the AppArmor profile is not parsed');

  function parse(name: string, text: string): { status: number | null; stderr: string } {
    const dir = mkdtempSync(join(tmpdir(), 'vos-apparmor-'));
    dirs.push(dir);
    writeFileSync(join(dir, name), text);
    if (!parser) throw new Error('apparmor_parser is not installed');
    const r = spawnSync(parser, [...PARSE, join(dir, name)], { encoding: 'utf8' });
    return { status: r.status, stderr: r.stderr };
  }

  it.skipIf(!parser)('the AppArmor profile compiles with apparmor_parser (as far as this AppArmor knows its rules)', () => {
    const profile = fill(config.deb.appArmorProfile);
    // The after-install decides with the same command whether this AppArmor takes the profile.
    expect(fill(config.deb.afterInstall)).toContain(`apparmor_parser ${PARSE.join(' ')} "$PROFILE_SOURCE"`);
    // And the command does reject a broken profile (a pattern that does not close).
    expect(parse('broken', 'profile broken /opt/broken {\n  /tmp/[abc r,\n}\n').status).not.toBe(0);
    const knowsUserns = parse('probe', 'profile vos-probe /opt/vos-probe {\n  userns,\n}\n').status === 0;
    if (knowsUserns) {
      // AppArmor 4 and later (Ubuntu 24.04, where the profile matters): all of it, as shipped.
      const r = parse('vos-app', profile);
      expect(r.status, r.stderr).toBe(0);
      return;
    }
    // An older AppArmor (Debian 12's 3.0) knows neither the 4.0 ABI nor the `userns` rule. It
    // rejects the profile at its abi line, so the after-install leaves it out there (such a
    // system does not restrict user namespaces: nothing needs it).
    const asShipped = parse('vos-app', profile);
    expect(asShipped.status).not.toBe(0);
    expect(asShipped.stderr).toMatch(/abi\/4\.0/);
    // The rest is checked here: the profile with the 3.0 ABI and without its `userns` rules,
    // which only an AppArmor 4 parser checks (not this one).
    console.log(`test/unit/packaging.test.ts: apparmor_parser ${parserVersion} does not know the userns rule; the profile is checked without it`);
    const lines = profile.split('\n');
    const userns = lines.filter((l) => l.trim() === 'userns,');
    expect(userns).toHaveLength(2); // the app's and vos-init's
    const older = lines
      .filter((l) => l.trim() !== 'userns,')
      .map((l) => (l === 'abi <abi/4.0>,' ? 'abi <abi/3.0>,' : l))
      .join('\n');
    expect(older).toMatch(/^abi <abi\/3\.0>,$/m);
    const r = parse('vos-app', older);
    expect(r.status, r.stderr).toBe(0);
  });

  it('ships the vos command and the systemd user unit', () => {
    const files = new Map(config.deb.fpm.map((m) => m.split('=') as [string, string]));
    expect(files.get('resources/systemd/vos-agent.service')).toBe('/usr/lib/systemd/user/vos-agent.service');
    expect(files.get('resources/deb/vos')).toBe('/usr/bin/vos');
    for (const source of files.keys()) expect(existsSync(join(ROOT, source)), source).toBe(true);
    const wrapper = readFileSync(join(ROOT, 'resources/deb/vos'), 'utf8');
    expect(wrapper).toContain(`/opt/vOS/${config.linux.executableName}`);
    expect(wrapper).toContain('/opt/vOS/resources/app.asar/bin/vos.js');
    expect(statSync(join(ROOT, 'resources/deb/vos')).mode & 0o111).not.toBe(0);
    const unit = readFileSync(join(ROOT, 'resources/systemd/vos-agent.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/env vos daemon$/m);
  });

  const shellcheck = spawnSync('shellcheck', ['--version']).status === 0;
  if (!shellcheck) console.log('test/unit/packaging.test.ts: shellcheck is not installed; the maintainer scripts get sh -n only');

  it.each([['afterInstall'], ['afterRemove'], ['vos']])('%s is a valid shell script', (which) => {
    const dir = mkdtempSync(join(tmpdir(), 'vos-deb-'));
    dirs.push(dir);
    const script = join(dir, which);
    const text = which === 'vos' ? readFileSync(join(ROOT, 'resources/deb/vos'), 'utf8') : fill(config.deb[which as 'afterInstall' | 'afterRemove']);
    expect(text.startsWith('#!/bin/sh\n')).toBe(true);
    writeFileSync(script, text);
    const syntax = spawnSync('sh', ['-n', script], { encoding: 'utf8' });
    expect(syntax.status, syntax.stderr).toBe(0);
    if (shellcheck) {
      const lint = spawnSync('shellcheck', ['--shell=sh', '--severity=style', script], { encoding: 'utf8' });
      expect(lint.status, lint.stdout).toBe(0);
    }
  });

  it('the after-install loads the profile with apparmor_parser only when present, and never fails without it', () => {
    const text = fill(config.deb.afterInstall);
    expect(text).toMatch(/command -v apparmor_parser/);
    expect(text).toMatch(/apparmor_parser --replace/);
    expect(text.trimEnd().endsWith('exit 0')).toBe(true);
  });
});
