/**
 * ARCHITECTURE.md's tables of API methods and events are checked against the code: the methods
 * the validator knows (which the compiler keeps in step with `ApiMethods`), the events of
 * `ApiEvent`, and what a paired peer may call (its "peer" column is PEER_RIGHTS, api/peer-rights.ts:
 * "yes", empty, or the narrowing). A table that misses one, names one that does not exist, or
 * marks a peer's rights wrongly fails here.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PEER_METHODS } from '../../src-main/agent/api-dispatcher.js';
import { PEER_RIGHTS, peerRightText } from '../../src-main/api/peer-rights.js';
import { EVENT_NAMES } from '../../src-main/api/protocol.js';
import { METHODS } from '../../src-main/api/validate.js';
import { ROOT } from '../helpers/agent-process.js';

const doc = readFileSync(join(ROOT, 'ARCHITECTURE.md'), 'utf8');

/** The rows of the table between `<!-- NAME:begin -->` and `<!-- NAME:end -->`, as cells. */
function tableRows(name: string): string[][] {
  const begin = doc.indexOf(`<!-- ${name}:begin -->`);
  const end = doc.indexOf(`<!-- ${name}:end -->`);
  if (begin < 0 || end < begin) throw new Error(`ARCHITECTURE.md has no ${name} table`);
  return doc
    .slice(begin, end)
    .split('\n')
    .filter((line) => line.startsWith('|'))
    .slice(2) // header and rule
    .map((line) =>
      line
        .slice(1, -1)
        .split('|')
        .map((cell) => cell.trim()),
    );
}

const unquote = (cell: string): string => cell.replace(/^`|`$/g, '');

describe('ARCHITECTURE.md', () => {
  it('lists exactly the API methods there are, and marks exactly those a peer may call', () => {
    const rows = tableRows('api-methods');
    const documented = rows.map((r) => unquote(r[0]!));
    expect([...documented].sort(), 'methods in the table (left) against api/validate.ts').toEqual([...METHODS].sort());
    const column = Object.fromEntries(rows.map((r) => [unquote(r[0]!), r[2] ?? '']));
    const expected = Object.fromEntries(METHODS.map((m) => [m, peerRightText(m)]));
    expect(column, 'the "peer" column against PEER_RIGHTS').toEqual(expected);
    expect(new Set(documented).size, 'a method listed twice').toBe(documented.length);
  });

  it('derives the dispatcher\'s peer methods from PEER_RIGHTS, with session.migrate narrowed to the peer itself', () => {
    const callable = METHODS.filter((m) => PEER_RIGHTS[m] !== 'local');
    expect([...PEER_METHODS].sort()).toEqual(callable.sort());
    expect(PEER_RIGHTS['session.migrate']).toEqual({ peer: 'only to itself' });
  });

  it('lists exactly the API events there are', () => {
    const documented = tableRows('api-events').map((r) => unquote(r[0]!));
    expect([...documented].sort()).toEqual([...EVENT_NAMES].sort());
  });
});
