import { describe, expect, it } from 'vitest';
import { VosError } from '../../src-main/api/errors.js';
import { checkParams, parseClientMessage } from '../../src-main/api/validate.js';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof VosError ? e.code : 'not-a-VosError';
  }
  return undefined;
}

describe('message validation', () => {
  it('accepts hello and requests, refuses anything else as a bad frame', () => {
    expect(parseClientMessage({ t: 'hello', protocol: 1, client: 'x' })).toEqual({ t: 'hello', protocol: 1, client: 'x' });
    expect(parseClientMessage({ t: 'req', id: 1, method: 'session.list' })).toMatchObject({ params: {} });
    expect(code(() => parseClientMessage([]))).toBe('bad_frame');
    expect(code(() => parseClientMessage({ t: 'req', id: 'one', method: 'x' }))).toBe('bad_frame');
    expect(code(() => parseClientMessage({ t: 'evil' }))).toBe('bad_frame');
  });

  it('checks each method\'s parameters', () => {
    expect(code(() => checkParams('session.nope' as never, {}))).toBe('unknown_method');
    expect(code(() => checkParams('session.create', { command: '' }))).toBe('invalid_params');
    expect(code(() => checkParams('session.create', { command: 'sh', args: [1] }))).toBe('invalid_params');
    expect(code(() => checkParams('session.create', { command: 'sh', cols: 80 }))).toBe('invalid_params');
    expect(code(() => checkParams('session.create', { command: 'sh', env: { 'A=B': 'x' } }))).toBe('invalid_params');
    expect(code(() => checkParams('session.resize', { id: 'a', cols: 0, rows: 10 }))).toBe('invalid_params');
    expect(code(() => checkParams('session.resize', { id: 'a', cols: 1.5, rows: 10 }))).toBe('invalid_params');
    expect(code(() => checkParams('session.input', { id: 'a' }))).toBe('invalid_params');
    expect(code(() => checkParams('session.list', 'x'))).toBe('invalid_params');
    expect(checkParams('session.resize', { id: 'a', cols: 100, rows: 30 })).toEqual({ id: 'a', cols: 100, rows: 30 });
  });

  it('refuses a terminal whose screen would cost the agent hundreds of megabytes', () => {
    let message = '';
    try {
      checkParams('session.resize', { id: 'a', cols: 4096, rows: 4096 });
    } catch (e) {
      message = (e as VosError).message;
    }
    expect(message).toMatch(/4096 x 4096 is too large: columns times rows may be at most 500000/);
    expect(code(() => checkParams('session.create', { command: 'sh', cols: 2000, rows: 1000 }))).toBe('invalid_params');
    expect(code(() => checkParams('session.attach', { id: 'a', cols: 4096, rows: 200 }))).toBe('invalid_params');
    // An 8K display with a small font still fits.
    expect(checkParams('session.resize', { id: 'a', cols: 1280, rows: 360 })).toEqual({ id: 'a', cols: 1280, rows: 360 });
  });
});
