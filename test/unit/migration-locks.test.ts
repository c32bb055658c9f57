/**
 * A move's lock check (agent/migration/locks.ts), with real processes and real locks: the
 * source finds the files its processes hold a flock, POSIX or OFD lock on; the target says which
 * of them are locked there now (here: the same machine, where the original still holds them, the
 * case that failed after the stop before), and nothing once the locks are gone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { locksTakenHere, sessionLockedFiles } from '../../src-main/agent/migration/locks.js';
import { checkParams } from '../../src-main/api/validate.js';
import { waitFor } from '../helpers/agent-process.js';

let dir: string;
let child: ChildProcess | null = null;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vos-locks-'));
});

afterAll(() => {
  child?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('the locks of a moving session', () => {
  it('are found on the source (flock, POSIX, OFD) and refuse a target where they are held now, naming each file', async () => {
    const files = ['flock', 'posix', 'ofd', 'open-only'].map((n) => join(dir, n));
    for (const f of files) writeFileSync(f, 'x');
    child = spawn('python3', [
      '-c',
      [
        'import fcntl, os, struct, sys, time',
        `a = open(${JSON.stringify(files[0])}, "r+"); fcntl.flock(a, fcntl.LOCK_EX)`,
        `b = open(${JSON.stringify(files[1])}, "r+"); fcntl.lockf(b, fcntl.LOCK_EX)`,
        `c = open(${JSON.stringify(files[2])}, "r+")`,
        // F_OFD_SETLK (37) with a write lock on the whole file: struct flock is (type, whence, start, len, pid)
        'fcntl.fcntl(c, 37, struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 0, 0, 0))',
        `d = open(${JSON.stringify(files[3])}, "r+")`,
        'print("locked", flush=True)',
        'sys.stdin.read()',
      ].join('\n'),
    ], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor('the locks to be taken', () => out.includes('locked'));
    const found = sessionLockedFiles(child.pid!, 0); // the process itself (no pod around it)
    expect(found.sort()).toEqual(files.slice(0, 3).sort());
    // The same machine: the original still holds them, so a restore here could not take them.
    expect(locksTakenHere(found).sort()).toEqual(
      files.slice(0, 3).sort().map((f) => `the session holds a lock on ${f}, which is locked here now (by another program, or by the session itself when this is the same machine): its restore here could not take it`),
    );
    expect(locksTakenHere([files[3]!, join(dir, 'missing')])).toEqual([]);
    child.kill('SIGKILL');
    await waitFor('the locks to go with it', () => locksTakenHere(found).length === 0);
    child = null;
  });

  it('refuses a peer\'s malformed list of locked files', () => {
    const offer = { name: 'n', command: 'c', args: [], cwd: '/', arch: 'x64', dirs: [], files: [], cols: 80, rows: 24, bytes: 0, sendUpTo: 0 };
    expect(() => checkParams('migration.offer', { ...offer, locks: 'x' })).toThrow();
    expect(() => checkParams('migration.offer', { ...offer, locks: [1] })).toThrow();
    expect(() => checkParams('migration.offer', { ...offer, locks: new Array(257).fill('/a') })).toThrow();
    expect(() => checkParams('migration.offer', { ...offer, locks: ['/tmp/x'] })).not.toThrow();
  });
});
