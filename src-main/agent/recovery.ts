/**
 * Recovery of a session whose program is gone without having ended (its pod was killed, the
 * machine rebooted): what a recoverable session looks like in the list, and bringing it back
 * from the newest image of it in the store that restores, the older ones in turn when the
 * newest is damaged or fails. The session manager keeps the recoverable sessions (their
 * records) and does the restores.
 */
import { VosError } from '../api/errors.js';
import type { ImageInfo, SessionInfo } from '../api/protocol.js';
import type { Session, SessionFileRecord } from './session/session.js';
import type { ImageStore } from './store/image-store.js';

/** Each session's newest image that looks good (a cheap look: complete, kept files there), by session id. */
export function latestGoodImages(store: ImageStore): Map<string, ImageInfo> {
  const latest = new Map<string, ImageInfo>();
  // Newest first: the first good one of each session is its latest.
  for (const image of store.list()) if (image.state === 'ok' && !latest.has(image.session.id)) latest.set(image.session.id, image);
  return latest;
}

/** A recoverable session as the list shows it. */
export function recoverableInfo(record: SessionFileRecord, latest: ImageInfo | undefined): SessionInfo {
  return {
    id: record.id,
    name: record.name,
    command: record.command,
    args: record.args,
    cwd: record.cwd,
    pid: 0,
    startedAt: record.startedAt,
    endedAt: null,
    state: 'recoverable',
    exit: null,
    cols: record.cols,
    rows: record.rows,
    viewers: 0,
    pod: record.controlPath !== null,
    restoredFrom: record.restoredFrom,
    restoreNote: record.restoreNote,
    ...(latest ? { recoverable: { image: latest.id, imageTime: latest.time } } : {}),
  };
}

export interface RecoveryHooks {
  /** Restores the store image `image` as the session (its name, and its id when free). */
  restore(image: string): Promise<Session>;
  /** After a failed attempt: the session is to be listed as recoverable again. */
  stillRecoverable(): void;
}

/**
 * Restores the session's newest image that works. Damaged images (as the store sees them) are
 * skipped; one that fails to restore (the restorer found it damaged, or could not restore it)
 * is followed by the one before. The restored session's note says which image it came from
 * when that is not the newest, and why. Fails with every image's reason when none worked.
 */
export async function recoverSession(record: SessionFileRecord, store: ImageStore, hooks: RecoveryHooks): Promise<Session> {
  const who = `session ${record.id} (${record.name})`;
  const images = store.forSession(record.id);
  if (images.length === 0) {
    throw new VosError('unknown_image', `cannot recover ${who}: the image store has no image of it any more (see vos images)`);
  }
  const passed: string[] = [];
  for (const { info } of images) {
    const which = `image ${info.id} of ${when(info.time)}`;
    if (info.problem) {
      passed.push(`${which} is damaged: ${info.problem}`);
      continue;
    }
    let session: Session;
    try {
      session = await hooks.restore(info.id);
    } catch (err) {
      hooks.stillRecoverable();
      // Without the runtime no image can work: say so once, not once per image.
      if (err instanceof VosError && err.code === 'unavailable') throw err;
      passed.push(`${which} did not restore: ${err instanceof Error ? err.message : String(err)}`);
      continue;
    }
    if (passed.length > 0) {
      const note = `recovered from the older ${which} (the program's memory is as it was then; files it wrote since are as they are now): ${passed.join('; ')}`;
      session.noteRestore([note, session.info().restoreNote].filter(Boolean).join('; '));
    }
    return session;
  }
  const allDamaged = images.every((i) => i.info.problem);
  throw new VosError(allDamaged ? 'bad_image' : 'restore_failed', `cannot recover ${who}: ${passed.join('; ')}`, {
    path: images[0]!.info.file,
  });
}

/** A time for messages: "2025-01-31 14:03:07 UTC". */
function when(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}
