/**
 * A checkpoint from the agent's side: the image file is opened here and handed to
 * `vos-init checkpoint`, which writes every record of it (HEADER; the pod's, through the
 * descriptor it passes on; SESSION and TRAILER). The agent gives only SESSION's content: the
 * session's metadata and the screen, taken while the pod is frozen and its last output has
 * arrived. A failed checkpoint leaves no file behind, and the session running.
 */
import { closeSync, fstatSync, fsyncSync, openSync, unlinkSync } from 'node:fs';
import { VosError } from '../../api/errors.js';
import type { CheckpointResult } from '../../api/protocol.js';
import type { Session } from '../session/session.js';
import { encodeSessionRecord, sessionRecordOf } from './session-record.js';
import { startCheckpointHelper } from './checkpoint-helper.js';
import { runtimeFiles } from './native.js';

export async function checkpointSession(session: Session, out: string, stop: boolean, agentName: string): Promise<CheckpointResult> {
  const runtime = runtimeFiles();
  if (!session.controlPath || !runtime) {
    throw new VosError('checkpoint_failed', `session ${session.id} does not run in a pod (the vOS runtime was not built when it started)`);
  }
  const started = Date.now();
  let fd: number;
  try {
    fd = openSync(out, 'w', 0o600);
  } catch (err) {
    throw new VosError('checkpoint_failed', `cannot create ${out}: ${(err as Error).message}`, { path: out });
  }
  let complete = false;
  try {
    const args = ['--control', session.controlPath];
    if (stop) args.push('--stop');
    const f = await startCheckpointHelper(runtime.init, args, {
      image: fd,
      sessionContent: async () => encodeSessionRecord(sessionRecordOf(session.info(), await session.settledScreen(), agentName)),
    }).done;
    fsyncSync(fd);
    const bytes = fstatSync(fd).size;
    complete = true;
    return {
      id: session.id,
      file: out,
      bytes,
      processes: Number(f.processes),
      threads: Number(f.threads),
      frozenMs: Number(f.frozen_us) / 1000,
      wallMs: Date.now() - started,
      stopped: f.stopped === '1',
    };
  } catch (err) {
    if (err instanceof VosError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const message = code === 'ENOSPC' ? `the disk is full (writing ${out})` : `cannot write ${out}: ${(err as Error).message}`;
    throw new VosError('checkpoint_failed', message, { path: out });
  } finally {
    closeSync(fd);
    if (!complete) {
      try {
        unlinkSync(out);
      } catch {
        /* never created */
      }
    }
  }
}
