/**
 * The range set that remembers which pages a checkpoint chain holds (common/range-set.c, used by
 * dump/dirty.c): checked against a plain bitmap through random operations, with several seeds.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/agent-process.js';
import { TOOL_CFLAGS } from '../helpers/runtime-dir.js';

describe('the range set (common/range-set.c)', () => {
  let dir: string;
  let tool: string;
  beforeAll(() => {
    dir = mkdtempSync('/tmp/vos-range-set-');
    tool = join(dir, 'range-set');
    const common = join(ROOT, 'src-main', 'runtime', 'common');
    execFileSync('gcc', [...TOOL_CFLAGS, '-std=c11', '-D_GNU_SOURCE', '-O1', '-g', '-Wall', '-Wextra', '-Werror', '-I', common,
      '-o', tool, join(ROOT, 'test', 'runtime', 'native', 'range-set.c'), join(common, 'range-set.c'), join(common, 'util.c')]);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([1, 2, 3, 42, 20261202])('agrees with a bitmap through 20,000 random splices, adds and removes (seed %i)', (seed) => {
    expect(execFileSync(tool, [String(seed)]).toString().trim()).toBe('ok 20000');
  });
});
