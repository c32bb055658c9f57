/** Waiting on a promise with a deadline. */
import { VosError } from '../api/errors.js';

/** `p`, or a `timeout` VosError saying `why` after `ms` (what `p` does later is ignored). */
export function withTimeout<T>(p: Promise<T>, ms: number, why: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new VosError('timeout', why)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e as Error);
      },
    );
  });
}
