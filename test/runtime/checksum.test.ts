/**
 * The runtime's CRC32C (hardware, three interleaved streams) agrees with the agent's plain
 * table version on every length around its block boundaries: the image's records are written
 * by one and checked by the other.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crc32c } from '../../src-main/base/crc32c.js';
import { ROOT } from '../helpers/agent-process.js';
import { TOOL_CFLAGS } from '../helpers/runtime-dir.js';

describe('CRC32C in the runtime and in the agent', () => {
  let dir: string;
  let tool: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'vos-crc-'));
    tool = join(dir, 'crc32c');
    const common = join(ROOT, 'src-main', 'runtime', 'common');
    execFileSync('gcc', [...TOOL_CFLAGS, '-std=c11', '-O2', '-Wall', '-Wextra', '-Werror', '-I', common, '-o', tool,
      join(ROOT, 'test', 'runtime', 'native', 'crc32c.c'), join(common, 'checksum.c')]);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('gives the check value for "123456789"', () => {
    expect(execFileSync(tool, { input: '123456789', encoding: 'utf8' }).trim()).toBe('e3069283');
  });

  it.each([0, 1, 7, 8, 9, 4095, 12287, 12288, 12289, 24583, 40001, (1 << 20) + 5])('agrees on %i random bytes', (n) => {
    const data = randomBytes(n);
    const runtime = execFileSync(tool, { input: data, encoding: 'utf8' }).trim();
    expect(runtime).toBe(crc32c(data).toString(16).padStart(8, '0'));
  });
});
