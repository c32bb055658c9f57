/**
 * The architecture's boundaries, checked on the source: a lower layer never imports a higher one,
 * only the Electron shell imports `electron`, and the renderer sees nothing of src-main but the
 * API definition (ARCHITECTURE.md, "Layers").
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/agent-process.js';

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) return files(full);
    return /\.(ts|svelte)$/.test(name) ? [full] : [];
  });
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*import\s+['"]([^'"]+)['"]/g)].map(
    (m) => (m[1] ?? m[2] ?? m[3])!,
  );
}

/** The top folder under src-main a module belongs to, or 'renderer'. */
function layerOf(path: string): string {
  const rel = relative(ROOT, path);
  if (rel.startsWith('src-renderer')) return 'renderer';
  return rel.split('/')[1] ?? '?';
}

const MAY_IMPORT: Record<string, string[]> = {
  api: ['api'],
  base: ['api', 'base'],
  agent: ['api', 'base', 'agent'],
  client: ['api', 'base', 'client'],
  cli: ['api', 'base', 'client', 'agent', 'cli'],
  shell: ['api', 'base', 'client', 'agent', 'shell'],
  renderer: ['api', 'renderer'],
};

describe('layering', () => {
  const all = [...files(join(ROOT, 'src-main')), ...files(join(ROOT, 'src-renderer'))];

  it('finds the modules', () => {
    expect(all.length).toBeGreaterThan(30);
  });

  it('keeps every import within the layers its folder may use', () => {
    const violations: string[] = [];
    for (const file of all) {
      const from = layerOf(file);
      for (const spec of imports(file)) {
        if (spec === 'electron' && from !== 'shell') violations.push(`${relative(ROOT, file)} imports electron`);
        if (!spec.startsWith('.')) {
          if (from === 'api' && spec !== 'electron') violations.push(`${relative(ROOT, file)} (api must stay pure) imports ${spec}`);
          continue;
        }
        const target = layerOf(resolve(dirname(file), spec));
        if (!(MAY_IMPORT[from] ?? []).includes(target)) violations.push(`${relative(ROOT, file)} (${from}) imports ${spec} (${target})`);
      }
    }
    expect(violations).toEqual([]);
  });
});
