/**
 * The mapped files a move leaves to its target (agent/migration/mapped-files.ts): which mappings
 * count (private file mappings of files still on disk), which files a target says it has alike
 * (same size and mtime, to the nanosecond), and that a target's answer is taken only as far as
 * it names files offered; a peer's offer is validated before anything is looked at.
 */
import { mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mappedFilesHere, offeredOnly, privatelyMappedPaths } from '../../src-main/agent/migration/mapped-files.js';
import { checkParams } from '../../src-main/api/validate.js';

let dir: string;
beforeEach(() => void (dir = mkdtempSync(join(tmpdir(), 'vos-mapped-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const describeFile = (path: string): { path: string; size: number; mtimeNs: string } => {
  const st = statSync(path, { bigint: true });
  return { path, size: Number(st.size), mtimeNs: st.mtimeNs.toString() };
};

describe('mapped files left to a move\'s target', () => {
  it('takes the private mappings of files on disk, not shared, anonymous, deleted or special ones', () => {
    const maps = [
      '00400000-00b6f000 r--p 00000000 fe:00 260689                             /usr/bin/node',
      '00b72000-025fe000 r-xp 00772000 fe:00 260689                             /usr/bin/node',
      '7f0000000000-7f0000001000 rw-s 00000000 00:2a 3                          /tmp/hsperfdata_root/22',
      '7f0000001000-7f0000002000 rw-p 00000000 00:00 0                          [heap]',
      '7f0000002000-7f0000003000 rw-p 00000000 00:00 0 ',
      '7f0000003000-7f0000004000 r--p 00000000 fe:00 99                         /tmp/gone.so (deleted)',
      '7f0000004000-7f0000005000 r--p 00001000 fe:00 12                         /usr/lib/with space/lib.so',
      '7f0000005000-7f0000006000 r-xp 00000000 00:00 0                          [vdso]',
    ].join('\n');
    expect(privatelyMappedPaths(maps)).toEqual(['/usr/bin/node', '/usr/bin/node', '/usr/lib/with space/lib.so']);
  });

  it('a target has a file alike when size and mtime are the same to the nanosecond', () => {
    const a = join(dir, 'lib.so');
    writeFileSync(a, 'x'.repeat(100));
    utimesSync(a, 1700000000, 1700000000);
    const offered = describeFile(a);
    expect(mappedFilesHere([offered])).toEqual([a]);
    expect(mappedFilesHere([{ ...offered, size: 101 }])).toEqual([]);
    expect(mappedFilesHere([{ ...offered, mtimeNs: (BigInt(offered.mtimeNs) + 1n).toString() }])).toEqual([]);
    expect(mappedFilesHere([{ ...offered, path: join(dir, 'missing.so') }])).toEqual([]);
    expect(mappedFilesHere([{ ...offered, path: dir, size: Number(statSync(dir).size) }])).toEqual([]); // not a regular file
  });

  it("takes a target's answer only as far as it names files offered", () => {
    const offered = [{ path: '/usr/bin/node', size: 1, mtimeNs: '1' }, { path: '/lib/libc.so.6', size: 1, mtimeNs: '1' }];
    expect(offeredOnly(['/usr/bin/node', '/etc/shadow', 7, '/usr/bin/node'], offered)).toEqual(['/usr/bin/node']);
    expect(offeredOnly('/usr/bin/node', offered)).toEqual([]);
    expect(offeredOnly(undefined, offered)).toEqual([]);
    expect(offeredOnly({ 0: '/usr/bin/node' }, offered)).toEqual([]);
  });

  it("an offer's list is refused unless it is at most 1024 paths with sizes and decimal mtimes", () => {
    const offer = (mappedFiles: unknown): unknown => ({
      name: 'n', command: 'c', cwd: '/', arch: 'x64', args: [], dirs: [], cols: 80, rows: 24, bytes: 0, sendUpTo: 0, files: [], mappedFiles,
    });
    const ok = { path: '/usr/bin/node', size: 100, mtimeNs: '1700000000000000000' };
    expect(() => checkParams('migration.offer', offer([ok]))).not.toThrow();
    expect(() => checkParams('migration.offer', offer([{ ...ok, mtimeNs: 1700000000 }]))).toThrow();
    expect(() => checkParams('migration.offer', offer([{ ...ok, mtimeNs: '17e8' }]))).toThrow();
    expect(() => checkParams('migration.offer', offer([{ ...ok, size: -1 }]))).toThrow();
    expect(() => checkParams('migration.offer', offer([{ ...ok, path: 7 }]))).toThrow();
    expect(() => checkParams('migration.offer', offer('/usr/bin/node'))).toThrow();
    expect(() => checkParams('migration.offer', offer(Array.from({ length: 1025 }, (_, i) => ({ ...ok, path: `/f${i}` }))))).toThrow();
  });
});
