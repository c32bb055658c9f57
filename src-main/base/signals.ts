/** Signal names as users write them ("TERM", "SIGTERM", "15") and as the kernel numbers them. */
import { constants } from 'node:os';
import { VosError } from '../api/errors.js';

const BY_NAME = constants.signals as Record<string, number>;

/** Normalizes a user's signal to its "SIGXXX" name; throws `invalid_params` if unknown. */
export function parseSignal(input: string): NodeJS.Signals {
  const s = input.trim().toUpperCase();
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    const name = Object.keys(BY_NAME).find((k) => BY_NAME[k] === n);
    if (name) return name as NodeJS.Signals;
  } else {
    const name = s.startsWith('SIG') ? s : `SIG${s}`;
    if (name in BY_NAME) return name as NodeJS.Signals;
  }
  throw new VosError('invalid_params', `unknown signal "${input}" (try TERM, INT, HUP, KILL or a number)`);
}

export function signalName(n: number): string {
  return Object.keys(BY_NAME).find((k) => BY_NAME[k] === n) ?? `signal ${n}`;
}
