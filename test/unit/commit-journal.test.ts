/**
 * The source's on-disk record of committed moves: durable, read back by a restarted agent, and
 * never trusted when damaged.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CommitJournal, type CommitRecord } from '../../src-main/agent/migration/commit-journal.js';

const record = (migration: string): CommitRecord => ({
  migration,
  peer: { id: 'b'.repeat(16), name: 'beta' },
  session: { id: 'a1b2c3', name: 'count' },
  original: { pid: 4242, startTime: '12345' },
  committedAt: 1_700_000_000_000,
});

describe('commit journal', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'vos-journal-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps what was written until it is removed, in a private directory', () => {
    const journal = new CommitJournal(dir);
    expect(journal.pending()).toEqual({ records: [], bad: [] });
    journal.write(record('00ff'));
    journal.write(record('abcd'));
    expect((statSync(join(dir, 'migrations')).mode & 0o777).toString(8)).toBe('700');
    expect((statSync(join(dir, 'migrations', 'abcd.json')).mode & 0o777).toString(8)).toBe('600');
    const again = new CommitJournal(dir); // as a restarted agent reads it
    expect(again.pending().records.map((r) => r.migration).sort()).toEqual(['00ff', 'abcd']);
    expect(again.pending().records.find((r) => r.migration === 'abcd')).toEqual(record('abcd'));
    again.remove('00ff');
    again.remove('00ff'); // twice: no error
    expect(again.pending().records.map((r) => r.migration)).toEqual(['abcd']);
    expect(readdirSync(join(dir, 'migrations'))).toEqual(['abcd.json']); // no temporary files left
  });

  it('sets a damaged or misnamed record aside instead of acting on it', () => {
    const journal = new CommitJournal(dir);
    journal.write(record('abcd'));
    writeFileSync(join(dir, 'migrations', 'dead.json'), '{"migration": "dead", "peer":'); // cut short
    writeFileSync(join(dir, 'migrations', 'beef.json'), JSON.stringify(record('0123'))); // names another
    writeFileSync(join(dir, 'migrations', 'cafe.json'), JSON.stringify({ ...record('cafe'), original: { pid: '1' } }));
    const { records, bad } = journal.pending();
    expect(records.map((r) => r.migration)).toEqual(['abcd']);
    expect(bad.map((p) => p.slice(p.lastIndexOf('/') + 1)).sort()).toEqual(['beef.json', 'cafe.json', 'dead.json']);
    expect(existsSync(join(dir, 'migrations', 'dead.json.unreadable'))).toBe(true);
    expect(journal.pending().bad).toEqual([]); // not read again
  });

  it('refuses a migration id that is not one (it becomes a file name)', () => {
    const journal = new CommitJournal(dir);
    expect(() => journal.write(record('../../etc/x'))).toThrow(/not a migration id/);
    expect(() => journal.remove('')).toThrow(/not a migration id/);
  });
});
