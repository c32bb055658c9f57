import { describe, expect, it } from 'vitest';
import { UsageError, parseArgs } from '../../src-main/cli/args.js';

describe('CLI argument parser', () => {
  it('leaves the command and its options alone after the first positional in run mode', () => {
    const r = parseArgs(['--name', 'x', 'bash', '-c', 'echo --name'], { name: { type: 'string' } }, { stopAtFirstPositional: true });
    expect(r.options).toEqual({ name: 'x' });
    expect(r.positionals).toEqual(['bash', '-c', 'echo --name']);
  });

  it('treats everything after -- as positional', () => {
    const r = parseArgs(['-d', '--', '--json', 'x'], { detach: { type: 'boolean', short: 'd' }, json: { type: 'boolean' } });
    expect(r.options).toEqual({ detach: true });
    expect(r.positionals).toEqual(['--json', 'x']);
  });

  it('takes an optional value only when it fits', () => {
    const specs = { web: { type: 'string' as const, optionalValue: true, valuePattern: /^\d+$/ }, name: { type: 'string' as const } };
    expect(parseArgs(['--web'], specs).options.web).toBe('');
    expect(parseArgs(['--web', '8080'], specs).options.web).toBe('8080');
    expect(parseArgs(['--web', '--name', 'a'], specs).options).toEqual({ web: '', name: 'a' });
    expect(parseArgs(['--web=9'], specs).options.web).toBe('9');
  });

  it('rejects unknown options and missing values', () => {
    expect(() => parseArgs(['--nope'], {})).toThrow(UsageError);
    expect(() => parseArgs(['--name'], { name: { type: 'string' } })).toThrow(/needs a value/);
    expect(() => parseArgs(['--json=1'], { json: { type: 'boolean' } })).toThrow(/takes no value/);
  });

  it('collects every value of a repeatable option, in order', () => {
    const specs = { 'take-as-is': { type: 'string' as const, repeatable: true }, name: { type: 'string' as const } };
    const r = parseArgs(['--take-as-is', '/a', 'img', '--take-as-is=/b', '--name', 'x'], specs);
    expect(r.lists['take-as-is']).toEqual(['/a', '/b']);
    expect(r.positionals).toEqual(['img']);
    expect(parseArgs(['img'], specs).lists).toEqual({});
  });
});
