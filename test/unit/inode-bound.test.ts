/**
 * The target's check of the files a session's SQLite knows by their inode
 * (agent/migration/inode-bound.ts): the very same file passes; another file at that path, or
 * none, refuses the move, naming the file; a peer's list is validated before it is looked at.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { inodeBoundHere } from '../../src-main/agent/migration/inode-bound.js';
import { checkParams } from '../../src-main/api/validate.js';

let dir: string;
beforeEach(() => void (dir = mkdtempSync(join(tmpdir(), 'vos-inode-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('files known by their inode', () => {
  it('the same file passes; another one, or none, is named', () => {
    const db = join(dir, 'app.db');
    writeFileSync(db, 'SQLite format 3\0');
    const inode = statSync(db).ino;
    expect(inodeBoundHere([{ path: db, inode }])).toEqual([]);
    const [other] = inodeBoundHere([{ path: db, inode: inode + 1 }]);
    expect(other).toBe(
      `SQLite in the session has ${db} open and checks that it stays the same file; here it is another file, to which SQLite would refuse to write (keep the database on storage both machines share)`,
    );
    expect(inodeBoundHere([{ path: join(dir, 'gone.db'), inode }])[0]).toContain('it is not here, and a copy would be another file');
  });

  it('an offer\'s list is refused unless it is at most 64 paths with inodes', () => {
    const offer = (inodeBound: unknown): unknown => ({
      name: 'n', command: 'c', cwd: '/', arch: 'x64', args: [], dirs: [], cols: 80, rows: 24, bytes: 0, sendUpTo: 0, files: [], inodeBound,
    });
    expect(() => checkParams('migration.offer', offer([{ path: '/a.db', inode: 12 }]))).not.toThrow();
    expect(() => checkParams('migration.offer', offer([{ path: '/a.db', inode: -1 }]))).toThrow();
    expect(() => checkParams('migration.offer', offer([{ path: 7, inode: 1 }]))).toThrow();
    expect(() => checkParams('migration.offer', offer('/a.db'))).toThrow();
    expect(() => checkParams('migration.offer', offer(Array.from({ length: 65 }, (_, i) => ({ path: `/f${i}`, inode: i }))))).toThrow();
  });
});
