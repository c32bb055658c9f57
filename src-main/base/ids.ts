import { randomBytes } from 'node:crypto';

/** A short random hex id (6 hex digits = 16M values; callers retry on a clash). */
export function shortId(bytes = 3): string {
  return randomBytes(bytes).toString('hex');
}
