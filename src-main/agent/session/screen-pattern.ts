/**
 * The patterns `session.wait` looks for on a screen. They are matched by RE2 (re2js, pure
 * JavaScript), whose time is linear in the text: a JavaScript RegExp backtracks, and a pattern
 * such as ^(a+)+$ against a row of a's froze the whole agent for seconds, whatever the timeout.
 * RE2 has no backreferences and no lookaround; such a pattern is refused when the request
 * arrives, with a message that says so.
 */
import { RE2JS } from 're2js';
import { VosError } from '../../api/errors.js';

export interface ScreenPattern {
  /** The pattern as the client gave it, for messages. */
  readonly source: string;
  /** Whether the pattern matches anywhere in `text`. */
  test(text: string): boolean;
}

/** The JavaScript flags `session.wait` takes and what each means for RE2. */
const FLAG_BITS: Record<string, number> = {
  i: RE2JS.CASE_INSENSITIVE,
  m: RE2JS.MULTILINE,
  s: RE2JS.DOTALL,
  // RE2 always matches by code point; "g" and "y" mean nothing for a yes/no test.
  u: 0,
  g: 0,
  y: 0,
};

export const DEFAULT_SCREEN_PATTERN_FLAGS = 'm';

/** Compiles a client's pattern, or fails with `invalid_params` saying what RE2 does not accept. */
export function compileScreenPattern(source: string, flags: string = DEFAULT_SCREEN_PATTERN_FLAGS): ScreenPattern {
  let bits = 0;
  for (const f of flags) {
    const bit = FLAG_BITS[f];
    if (bit === undefined) throw new VosError('invalid_params', `unsupported flag "${f}" (the flags are i, m, s)`);
    bits |= bit;
  }
  let compiled: RE2JS;
  try {
    compiled = RE2JS.compile(source, bits);
  } catch (err) {
    const detail = err instanceof Error ? err.message.replace(/^error parsing regexp: /, '') : String(err);
    throw new VosError(
      'invalid_params',
      `not a pattern vos can wait for (${detail}); patterns use RE2 syntax, which has no backreferences (\\1) and no lookaround ((?=, (?!, (?<=, (?<!)`,
    );
  }
  return { source, test: (text) => compiled.test(text) };
}
