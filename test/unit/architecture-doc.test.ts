/**
 * ARCHITECTURE.md's tables of API methods and events are checked against the code: the methods
 * the validator knows (which the compiler keeps in step with `ApiMethods`), the events of
 * `ApiEvent`, and the methods a paired peer may call. A table that misses one, names one that
 * does not exist, or marks a peer's rights wrongly fails here, with the rows to paste.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PEER_METHODS } from '../../src-main/agent/api-dispatcher.js';
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
    const peer = rows.filter((r) => r[2] === 'yes').map((r) => unquote(r[0]!));
    expect(peer.sort(), 'methods marked "peer" against PEER_METHODS').toEqual([...PEER_METHODS].sort());
    expect(new Set(documented).size, 'a method listed twice').toBe(documented.length);
  });

  it('lists exactly the API events there are', () => {
    const documented = tableRows('api-events').map((r) => unquote(r[0]!));
    expect([...documented].sort()).toEqual([...EVENT_NAMES].sort());
  });
});
