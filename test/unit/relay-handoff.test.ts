/**
 * The words of a chain made straight come from another machine: every field of a HANDOFF or
 * MOVED payload, and the `reach` of a relay stream, is checked, and anything else is refused
 * (null), never half-taken. And a channel that takes a connection over sends what it was given
 * to keep first, numbered from where the other side stands.
 */
import { describe, expect, it } from 'vitest';
import { loopbackPair } from '../../src-main/agent/relay/loopback-stream.js';
import { RelayChannel, type ChannelEnd } from '../../src-main/agent/relay/relay-channel.js';
import { encodeHandoff, encodeMoved, parseHandoff, parseMoved, parseReach, type Handoff } from '../../src-main/agent/relay/relay-handoff.js';

const A = 'a'.repeat(64);
const C = 'c'.repeat(64);
const good: Handoff = { anchor: { id: A, name: 'alpha' }, migration: '57f24febbbf46d12', object: 3, down: 4784128, up: 4456448, upTaken: 4390912 };

/** A payload from a hostile peer: the good one with `fields` changed. */
const with_ = (fields: Record<string, unknown>): Buffer => Buffer.from(JSON.stringify({ ...good, ...fields }));

describe('handoff words', () => {
  it('reads back what was written', () => {
    expect(parseHandoff(encodeHandoff(good))).toEqual(good);
    expect(parseMoved(encodeMoved(C))).toBe(C);
  });

  it.each([
    ['an anchor id that is not a device id', { anchor: { id: 'alpha', name: 'alpha' } }],
    ['no anchor', { anchor: null }],
    ['a migration id that is not hex', { migration: '../../etc' }],
    ['a negative count', { down: -1 }],
    ['a count past what a number holds exactly', { up: 2 ** 53 }],
    ['a count that is not a whole number', { upTaken: 1.5 }],
    ['a count as a string', { down: '12' }],
    ['an object id past 32 bits', { object: 2 ** 32 }],
  ])('refuses a HANDOFF with %s', (_what, fields) => {
    expect(parseHandoff(with_(fields))).toBeNull();
  });

  it('refuses what is not a JSON object, or too long; cleans the name it shows', () => {
    for (const p of ['', 'null', '[1]', '"x"', '{', 'x'.repeat(10)]) expect(parseHandoff(Buffer.from(p))).toBeNull();
    expect(parseHandoff(with_({ pad: 'x'.repeat(5000) }))).toBeNull();
    expect(parseHandoff(with_({ anchor: { id: A, name: 'al\u001b[2Jpha\n' } }))?.anchor.name).not.toMatch(/[\u0000-\u001f]/);
    expect(parseHandoff(with_({ anchor: { id: A } }))?.anchor.name).toBe(A.slice(0, 8));
    for (const p of ['{"peer":"beta"}', '{}', '[]', 'null', JSON.stringify({ peer: C.toUpperCase() })]) expect(parseMoved(Buffer.from(p))).toBeNull();
  });

  it('keeps only device ids of a reach, at most 256', () => {
    expect(parseReach([A, 'beta', 7, null, C])).toEqual([A, C]);
    expect(parseReach('x')).toEqual([]);
    expect(parseReach(Array(1000).fill(A))).toHaveLength(256);
  });
});

describe('a channel that takes a connection over', () => {
  /** An end that keeps what it is given. */
  const keeper = (): ChannelEnd & { got: Buffer[] } => {
    const got: Buffer[] = [];
    return { got, write: (d) => (got.push(d), true), end: () => {}, reset: () => {}, pause: () => {}, resume: () => {} };
  };

  it('lists its unacknowledged bytes from an offset, and refuses offsets it no longer has', () => {
    const ch = new RelayChannel(keeper(), 30_000, { received: 0, sent: 100, kept: [] });
    ch.send(Buffer.from('abcdef'));
    ch.send(Buffer.from('ghij'));
    expect(ch.sentBytes).toBe(110);
    expect(Buffer.concat(ch.keptFrom(103)!).toString()).toBe('defghij');
    expect(Buffer.concat(ch.keptFrom(110)!).toString()).toBe('');
    expect(ch.keptFrom(99)).toBeNull(); // acknowledged before: gone
    expect(ch.keptFrom(111)).toBeNull(); // never sent
    ch.fail('test over');
  });

  it('sends what it was given first, from the byte the other side has, and nothing before it', async () => {
    const far = keeper();
    // Here: starts where the relaying machine left it (the other side has 1000 of ours; we have 500 of its).
    const here = new RelayChannel(keeper(), 30_000, { received: 500, sent: 1000, kept: [Buffer.from('kept-')] });
    here.send(Buffer.from('then-new'));
    const there = new RelayChannel(far, 30_000, { received: 1000, sent: 500, kept: [] });
    const toThere = loopbackPair({});
    const toHere = loopbackPair({});
    expect(here.connect(toThere.out, toHere.incoming, 1000)).toBe(true);
    expect(there.connect(toHere.out, toThere.incoming, 500)).toBe(true);
    const deadline = Date.now() + 5_000;
    while (Buffer.concat(far.got).length < 13 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(Buffer.concat(far.got).toString()).toBe('kept-then-new');
    // Asking for a byte before what it was given is refused (the connection cannot go on).
    const again = new RelayChannel(keeper(), 30_000, { received: 0, sent: 1000, kept: [Buffer.from('x')] });
    const pair = loopbackPair({});
    const back = loopbackPair({});
    back.incoming.on('error', () => {});
    expect(again.connect(pair.out, back.incoming, 999)).toBe(false);
    for (const ch of [here, there]) ch.fail('test over');
  });
});
