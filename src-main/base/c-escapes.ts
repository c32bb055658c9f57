/**
 * C-style escapes for `vos send`: \r \n \t \e \a \b \f \v \0 \\ \xNN \uNNNN.
 * Anything else after a backslash is an error rather than a guess.
 */
import { VosError } from '../api/errors.js';

const SIMPLE: Record<string, string> = {
  r: '\r',
  n: '\n',
  t: '\t',
  e: '\x1b',
  a: '\x07',
  b: '\b',
  f: '\f',
  v: '\v',
  '0': '\0',
  '\\': '\\',
  "'": "'",
  '"': '"',
};

export function unescapeC(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const next = text[i + 1];
    if (next === undefined) throw new VosError('invalid_params', 'the text ends with a lone backslash (write \\\\ for one)');
    if (next in SIMPLE) {
      out += SIMPLE[next];
      i += 1;
      continue;
    }
    const hexLength = next === 'x' ? 2 : next === 'u' ? 4 : 0;
    if (hexLength) {
      const hex = text.slice(i + 2, i + 2 + hexLength);
      if (hex.length !== hexLength || !/^[0-9a-fA-F]+$/.test(hex)) {
        throw new VosError('invalid_params', `\\${next} needs ${hexLength} hex digits (at position ${i})`);
      }
      out += String.fromCharCode(parseInt(hex, 16));
      i += 1 + hexLength;
      continue;
    }
    throw new VosError('invalid_params', `unknown escape \\${next} at position ${i}`);
  }
  return out;
}
