/**
 * Before a planned shutdown (`agent.stop` with `checkpointFirst`: the systemd unit's stop, the
 * app's "Quit and end all sessions"): every running session is checkpointed into the store as a
 * `before-shutdown` image, a few at a time, all within one deadline, so that after a reboot all
 * of them come back with `vos recover --all`. A session that fails, or is not done by the
 * deadline, is reported with why; the stop goes on regardless (a checkpoint still under way at
 * the deadline finishes or is swept by the next agent; it never harms the session).
 */
import { DEFAULT_SEND_FILES_UP_TO } from '../api/protocol.js';
import { checkpointToStore } from './runtime/checkpoint.js';
import type { Session } from './session/session.js';
import type { ImageStore } from './store/image-store.js';

export const DEFAULT_SHUTDOWN_CHECKPOINT_MS = 30_000;
/** Checkpoints at once: each freezes one pod and writes its memory; more would only share the disk. */
const CONCURRENT = 4;
/** Per session, the before-shutdown images kept (the newest, and the one before as a fallback). */
const KEEP_BEFORE_SHUTDOWN = 2;

export interface ShutdownCheckpoints {
  checkpointed: string[];
  failed: { id: string; reason: string }[];
}

export async function checkpointBeforeShutdown(
  sessions: Session[],
  store: ImageStore,
  options: { agentName: string; timeoutMs: number; log: (message: string) => void },
): Promise<ShutdownCheckpoints> {
  const started = Date.now();
  const deadline = started + options.timeoutMs;
  const checkpointed: string[] = [];
  const failed: { id: string; reason: string }[] = [];
  const settled = new Set<string>();
  const targets = sessions.filter((s) => s.running);
  const queue = [...targets];

  const one = async (s: Session): Promise<void> => {
    if (!s.controlPath) {
      failed.push({ id: s.id, reason: s.noPodReason });
      return;
    }
    try {
      const r = await checkpointToStore(s, store, { kind: 'before-shutdown', stop: false, keepFilesUpTo: DEFAULT_SEND_FILES_UP_TO, agentName: options.agentName });
      if (settled.has(s.id)) return; // too late: already reported
      checkpointed.push(s.id);
      pruneBeforeShutdown(store, s.id, r.image);
    } catch (err) {
      if (!settled.has(s.id)) failed.push({ id: s.id, reason: err instanceof Error ? err.message : String(err) });
    } finally {
      settled.add(s.id);
    }
  };
  const worker = async (): Promise<void> => {
    for (let s = queue.shift(); s && Date.now() < deadline; s = queue.shift()) await one(s);
  };
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))));
  await Promise.race([Promise.all(Array.from({ length: CONCURRENT }, worker)), timedOut]);
  clearTimeout(timer);
  for (const s of targets) {
    if (settled.has(s.id)) continue;
    settled.add(s.id);
    failed.push({ id: s.id, reason: `not checkpointed within ${Math.round(options.timeoutMs / 1000)} s` });
  }
  options.log(
    `before shutdown: checkpointed ${checkpointed.length} of ${checkpointed.length + failed.length} sessions in ${Date.now() - started} ms` +
      failed.map((f) => `; ${f.id}: ${f.reason}`).join(''),
  );
  return { checkpointed, failed };
}

/** Keeps the session's newest before-shutdown images; other kinds of images are not touched. */
function pruneBeforeShutdown(store: ImageStore, sessionId: string, newest: string | null): void {
  const older = store.forSession(sessionId).filter((i) => i.info.kind === 'before-shutdown' && i.info.id !== newest);
  for (const { info } of older.slice(KEEP_BEFORE_SHUTDOWN - 1)) {
    try {
      store.remove(info.id);
    } catch {
      /* removed meanwhile; nothing to keep tidy */
    }
  }
}
