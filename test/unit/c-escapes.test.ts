import { describe, expect, it } from 'vitest';
import { unescapeC } from '../../src-main/base/c-escapes.js';

describe('C escapes for vos send', () => {
  it('interprets the documented escapes', () => {
    expect(unescapeC('ls\\r')).toBe('ls\r');
    expect(unescapeC('a\\tb\\nc')).toBe('a\tb\nc');
    expect(unescapeC('\\e[A')).toBe('\x1b[A');
    expect(unescapeC('\\x03')).toBe('\x03');
    expect(unescapeC('\\u00e9\\\\')).toBe('é\\');
    expect(unescapeC('\\a\\b\\f\\v\\0')).toBe('\x07\b\f\v\0');
    expect(unescapeC('plain text')).toBe('plain text');
  });

  it('refuses what it does not know, saying where', () => {
    expect(() => unescapeC('\\q')).toThrow(/unknown escape \\q at position 0/);
    expect(() => unescapeC('x\\')).toThrow(/lone backslash/);
    expect(() => unescapeC('\\xZ1')).toThrow(/needs 2 hex digits/);
    expect(() => unescapeC('\\u12')).toThrow(/needs 4 hex digits/);
  });
});
