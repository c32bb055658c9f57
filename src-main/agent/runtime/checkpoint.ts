/**
 * A checkpoint from the agent's side: the image's temporary file is made here and handed to
 * `vos-init checkpoint`, which writes every record of it (HEADER; the pod's, through the
 * descriptor it passes on; SESSION and TRAILER). The agent gives only SESSION's content: the
 * session's metadata and the screen, taken while the pod is frozen and its last output has
 * arrived. The image takes its place only once complete and flushed (store/atomic-file.ts):
 * a failed checkpoint leaves whatever was there before, no temporary file, and the session
 * running.
 *
 * Into the store, the content of the session's small open files is read while the pod is
 * frozen and kept with the image (store/kept-files.ts). An image written elsewhere (`out`)
 * does not carry them: the files must be there at restore, as they were.
 *
 * An incremental checkpoint into the store (`incremental`, the scheduler's) names the session's
 * newest store image of a chain as its parent (`--incremental --parent CHAIN-ID`); pod init
 * writes only the pages written since, when its write tracking started from exactly that image,
 * and a whole image otherwise, saying why (`fullReason`). See ARCHITECTURE.md.
 */
import { fstatSync } from 'node:fs';
import { dirname } from 'node:path';
import { VosError } from '../../api/errors.js';
import type { CheckpointResult, ImageKind } from '../../api/protocol.js';
import type { Session } from '../session/session.js';
import { commitTemp, createTempBeside, discardTemp, writeFailure, type TempFile } from '../store/atomic-file.js';
import type { ImageStore } from '../store/image-store.js';
import { collectKeptFiles, type KeptFile } from '../store/kept-files.js';
import { encodeSessionRecord, sessionRecordOf } from './session-record.js';
import { startCheckpointHelper } from './checkpoint-helper.js';
import { runtimeFiles } from './native.js';

/** Writes an image of the session to `out`, atomically: `out` is replaced only by a complete image. */
export async function checkpointToFile(
  session: Session,
  out: string,
  stop: boolean,
  agentName: string,
  onPrewarning?: (warning: string) => void,
): Promise<CheckpointResult> {
  const init = runtimeFor(session);
  let temp: TempFile;
  try {
    temp = createTempBeside(out);
  } catch (err) {
    throw writeFailure(err, out);
  }
  try {
    const r = await runHelper(init, session, temp.fd, out, stop, agentName, [], null, onPrewarning);
    commitTemp(temp);
    return { ...r.result, file: out, image: null, keptFiles: 0, removed: [], incremental: false, parent: null };
  } catch (err) {
    discardTemp(temp);
    throw writeFailure(err, out);
  }
}

/**
 * Writes an image of the session into the store, with the content of its open files of at
 * most `keepFilesUpTo` bytes; then, with `keep`, removes the session's older images beyond that many.
 */
export async function checkpointToStore(
  session: Session,
  store: ImageStore,
  options: {
    kind: ImageKind;
    stop: boolean;
    keep?: number;
    /** Write only what changed since the session's previous store image, where it can (issue 9 part 2). */
    incremental?: boolean;
    keepFilesUpTo: number;
    agentName: string;
    /** What a restore will not carry, said before the pod is frozen (the result's `warnings` are exact). */
    onPrewarning?: (warning: string) => void;
  },
): Promise<CheckpointResult> {
  const init = runtimeFor(session);
  const tip = options.incremental ? store.chainTip(session.id) : null;
  const chainArgs = options.incremental ? ['--incremental', ...(tip ? ['--parent', tip.chain.id] : [])] : [];
  let pending: ReturnType<ImageStore['begin']>;
  try {
    pending = store.begin({ id: session.id, name: session.name }, options.kind);
  } catch (err) {
    throw writeFailure(err, store.dir);
  }
  const file = pending.temp.final;
  let kept: KeptFile[] = [];
  try {
    const r = await runHelper(init, session, pending.temp.fd, file, options.stop, options.agentName, chainArgs, () => {
      kept = collectKeptFiles(session.pid, options.keepFilesUpTo, dirname(store.dir));
    }, options.onPrewarning);
    const f = r.fields;
    const incremental = options.incremental === true && f.incremental === '1' && tip !== null;
    const chain = options.incremental && /^[0-9a-f]{32}$/.test(f.image_id ?? '') ? { id: f.image_id!, depth: incremental ? Number(f.depth) : 0, parent: incremental ? tip.image : null } : null;
    const stored = store.commit(pending, kept, chain);
    const removed = options.keep !== undefined ? store.prune(session.id, options.keep) : [];
    return {
      ...r.result,
      file,
      image: stored.info.id,
      keptFiles: stored.files.length,
      removed,
      incremental,
      parent: incremental ? tip.image : null,
      ...(options.incremental && !incremental ? { fullReason: f.full_reason ?? 'the runtime did not write an incremental image' } : {}),
    };
  } catch (err) {
    store.abort(pending);
    throw writeFailure(err, file);
  }
}

function runtimeFor(session: Session): string {
  const runtime = runtimeFiles();
  if (!session.controlPath || !runtime) {
    throw new VosError('unsupported', `session ${session.id} cannot be checkpointed or moved: ${session.noPodReason}`);
  }
  return runtime.init;
}

type HelperResult = Omit<CheckpointResult, 'file' | 'image' | 'keptFiles' | 'removed' | 'incremental' | 'parent' | 'fullReason'>;

/** Runs `vos-init checkpoint` writing to `fd` (extra: more of its options); `whileFrozen` runs once the pod is frozen. */
async function runHelper(
  init: string,
  session: Session,
  fd: number,
  file: string,
  stop: boolean,
  agentName: string,
  extra: string[],
  whileFrozen: (() => void) | null,
  onPrewarning?: (warning: string) => void,
): Promise<{ result: HelperResult; fields: Record<string, string> }> {
  await session.podReady();
  const started = Date.now();
  const args = ['--control', session.controlPath!, ...extra];
  if (stop) args.push('--stop');
  let f: Record<string, string>;
  try {
    f = await startCheckpointHelper(init, args, {
      image: fd,
      ...(onPrewarning ? { onPrewarning } : {}),
      sessionContent: async () => {
        whileFrozen?.();
        const { shot } = await session.screenCut();
        const info = session.info();
        return { content: shot.then((screen) => encodeSessionRecord(sessionRecordOf(info, screen, agentName))) };
      },
    }).done;
  } catch (err) {
    // vos-init says "the disk is full (writing the image)": name the file.
    if (err instanceof VosError && /^the disk is full/.test(err.message)) {
      throw new VosError('checkpoint_failed', `the disk is full (writing ${file}); nothing was replaced`, { ...err.details, path: file });
    }
    throw err;
  }
  return {
    result: {
      id: session.id,
      bytes: fstatSync(fd).size,
      processes: Number(f.processes),
      threads: Number(f.threads),
      frozenMs: Number(f.frozen_us) / 1000,
      wallMs: Date.now() - started,
      stopped: f.stopped === '1',
      ...(f.warnings ? { warnings: f.warnings.split('\n') } : {}),
      ...(f.outside ? { stoppedFromOutside: f.outside.split('\n') } : {}),
    },
    fields: f,
  };
}
