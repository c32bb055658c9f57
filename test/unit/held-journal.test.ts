/**
 * The target's record of a held migration copy (issue 15 item 7): durable, read back whole by
 * the next agent, and one that cannot be read is set aside, never trusted.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HeldJournal, type HeldRecord } from '../../src-main/agent/migration/held-journal.js';

let dir: string;
beforeEach(() => void (dir = mkdtempSync(join(tmpdir(), 'vos-test-held-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const record: HeldRecord = {
  migration: 'abcdef0123456789',
  peer: { id: 'p'.repeat(64), name: 'alpha' },
  session: 's1',
  offer: { name: 'n', command: 'sh', args: [], cwd: '/', cols: 80, rows: 24, dirs: [], files: [], bytes: 0, arch: process.arch, sendUpTo: 0 },
  heldAt: 1,
};

describe('HeldJournal', () => {
  it('keeps a record until it is removed', () => {
    const j = new HeldJournal(dir);
    expect(j.pending()).toEqual({ records: [], bad: [] });
    j.write(record);
    expect(new HeldJournal(dir).pending().records).toEqual([record]);
    j.remove(record.migration);
    j.remove(record.migration); // twice: nothing to do
    expect(j.pending().records).toEqual([]);
  });

  it('sets aside a record it cannot read, or one under another name', () => {
    const j = new HeldJournal(dir);
    j.write(record);
    writeFileSync(join(dir, 'held', '0123.json'), '{"migration": "0123"');
    writeFileSync(join(dir, 'held', 'ffff.json'), JSON.stringify({ ...record, migration: 'eeee' }));
    const { records, bad } = j.pending();
    expect(records).toEqual([record]);
    expect(bad).toHaveLength(2);
    expect(readdirSync(join(dir, 'held')).filter((n) => n.endsWith('.unreadable'))).toHaveLength(2);
    expect(existsSync(join(dir, 'held', `${record.migration}.json`))).toBe(true);
  });

  it('takes only migration ids as names', () => {
    expect(() => new HeldJournal(dir).write({ ...record, migration: '../x' })).toThrow(/not a migration id/);
  });
});
