/**
 * The content of a session's small open regular files, kept with a store image so that it can
 * be restored after the program deleted them (vim's swap file, a compiler's /tmp/cc*.s). Taken
 * while the pod is frozen, so the content matches the image. The files are found the way a
 * migration finds the files it sends along (migration/preflight.ts), with the same size limit.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FileNeed } from '../../api/protocol.js';
import { sessionFiles } from '../migration/preflight.js';

/** At most this many bytes of kept files per image (the rest stay needed as they are). */
export const KEPT_FILES_BUDGET = 64 * 1024 * 1024;

export interface KeptFile {
  need: FileNeed;
  data: Buffer;
}

/**
 * The open regular files of at most `upTo` bytes under `root`, with their content; none under
 * `skipDir` (the state directory: pod init holds the image being written open, for one).
 */
export function collectKeptFiles(root: number, upTo: number, skipDir: string, budget = KEPT_FILES_BUDGET): KeptFile[] {
  const kept: KeptFile[] = [];
  let total = 0;
  for (const file of sessionFiles(root, upTo).files) {
    if (file.path.startsWith(skipDir + '/') || total + file.size > budget) continue;
    let data: Buffer;
    try {
      data = readFileSync(file.path);
    } catch {
      continue; // unreadable or gone: it stays needed at restore, as without a store
    }
    if (data.length > upTo || total + data.length > budget) continue;
    // The hash of what is kept, read once (the file may have changed since it was listed).
    kept.push({ need: { ...file, size: data.length, hash: createHash('sha256').update(data).digest('hex') }, data });
    total += data.length;
  }
  return kept;
}
