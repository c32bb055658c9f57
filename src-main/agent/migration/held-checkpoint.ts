/**
 * The source half of a migration's image: a checkpoint written into a stream (the link to the
 * target) instead of a file, after which the pod stays frozen — *held* — until the migration's
 * outcome is known: `finish(true)` ends it (it runs on the target now), `finish(false)` lets it
 * run again exactly where it was.
 *
 * The image comes from `vos-init checkpoint` through a socket the agent forwards into the
 * stream (with backpressure: a slow link slows the writing, nothing piles up): HEADER, the
 * pod's records, then SESSION (whose content the agent gives: the screen, taken while frozen)
 * and TRAILER. The helper closes its end once TRAILER is written; at that end of the socket the
 * agent ends the stream.
 *
 * Live (`live: true`): before freezing, the pod sends its memory while it runs, in rounds of
 * the pages written since the previous one (PRECOPY records, same stream); frozen, it sends
 * only what changed since. Where the kernel cannot track written pages it says so and the
 * checkpoint goes on stop-and-copy (`fallback` says why).
 */
import { rmSync, writeFileSync } from 'node:fs';
import type { Duplex, Writable } from 'node:stream';
import { VosError } from '../../api/errors.js';
import { startCheckpointHelper, type KeptConnection } from '../runtime/checkpoint-helper.js';
import { encodeSessionRecord, sessionRecordOf } from '../runtime/session-record.js';
import { runtimeFiles } from '../runtime/native.js';
import type { Session } from '../session/session.js';

export interface HeldCheckpoint {
  processes: number;
  threads: number;
  /** The whole image, as sent. */
  bytes: number;
  /** When the pod froze (Date.now()). */
  frozenAt: number;
  /** Rounds of copying while the pod ran (0: stop-and-copy). */
  rounds: number;
  /** Live was asked for and not possible: why. */
  fallback: string | null;
  /** Ends the pod (commit) or lets it run again; resolves with how long it was frozen. */
  finish(commit: boolean): Promise<{ frozenMs: number }>;
  /**
   * The connections to outside the pod the image keeps at the source (by object id), and
   * the helper's end of them: after a commit it relays them (relay/anchor.ts).
   */
  relayed: Map<number, KeptConnection>;
  relay: Duplex | null;
}

/**
 * Freezes the session's pod and writes its image into `sink`; resolves once the whole image is
 * in the sink (and the pod is held). `onBytes` reports progress. Rejects (the pod running again)
 * if the checkpoint fails.
 */
export async function checkpointHeld(
  session: Session,
  sink: Writable,
  agentName: string,
  options: {
    live: boolean;
    /** Mapped files the target has alike: their content stays out of the image. */
    filesThere?: string[];
    onBytes: (sent: number, frozen: boolean) => void;
    /** What the move will not carry, said before the pod stops (and before any copying). */
    onPrewarning?: (warning: string) => void;
  },
): Promise<HeldCheckpoint> {
  const { onBytes } = options;
  const runtime = runtimeFiles();
  if (!session.controlPath || !runtime) {
    throw new VosError('unsupported', `session ${session.id} cannot be checkpointed or moved: ${session.noPodReason}`);
  }
  await session.podReady();
  // The list pod init reads beside its control socket (vos-init checkpoint --files-there).
  const thereList = `${session.controlPath}.there`;
  const filesThere = options.filesThere ?? [];
  if (filesThere.length) writeFileSync(thereList, `${filesThere.join('\n')}\n`, { mode: 0o600 });
  let sent = 0;
  let frozenAt = 0;
  let rounds = 0;
  let fallback: string | null = null;
  const helper = startCheckpointHelper(runtime.init, ['--control', session.controlPath], {
    image: 'pipe',
    hold: true,
    relay: true,
    filesThere: filesThere.length > 0,
    ...(options.onPrewarning ? { onPrewarning: options.onPrewarning } : {}),
    sessionContent: async () => {
      frozenAt = Date.now();
      const { shot } = await session.screenCut();
      const info = session.info();
      return { content: shot.then((screen) => encodeSessionRecord(sessionRecordOf(info, screen, agentName))) };
    },
    precopy: options.live
      ? {
          onRound: () => void rounds++,
          onUnavailable: (why) => void (fallback = why),
        }
      : undefined,
  });
  const imageStream = helper.image!;

  // If the stream to the target breaks (the link is cut, the target went away), the pod's
  // writes must fail rather than wait: it is frozen until its image is out.
  let sinkBroken: string | null = null;
  let sinkDone = false;
  const breakSink = (why: string): void => {
    if (sinkBroken !== null || sinkDone) return;
    sinkBroken = why;
    imageStream.destroy();
  };
  sink.once('error', (err: Error) => breakSink(err.message));
  sink.once('close', () => breakSink('the stream to the target closed'));

  // The image, forwarded as it comes, at the pace the sink takes it.
  const corruptAt = corruptionForTests();
  let imageEnded = false;
  const imageDone = new Promise<void>((resolve) => {
    imageStream.once('close', () => resolve());
    imageStream.once('error', () => resolve());
    imageStream.once('end', () => {
      imageEnded = true;
      resolve();
    });
    imageStream.on('data', (data: Buffer) => {
      const chunk = corruptAt >= sent && corruptAt < sent + data.length ? flipByte(data, corruptAt - sent) : data;
      sent += chunk.length;
      onBytes(sent, frozenAt !== 0);
      if (!sink.write(chunk)) {
        imageStream.pause();
        sink.once('drain', () => imageStream.resume());
      }
    });
  });

  // "held": the image is complete and the helper's end of the stream closed, so its end comes.
  let f;
  try {
    f = await helper.held;
  } catch (err) {
    throw sinkBroken !== null ? new VosError('checkpoint_failed', sinkBroken) : err;
  } finally {
    if (filesThere.length) rmSync(thereList, { force: true });
  }
  await imageDone;
  if (!imageEnded || sent !== Number(f.bytes) || sinkBroken !== null) {
    helper.verdict(false);
    throw new VosError('checkpoint_failed', sinkBroken ?? `the image stream broke (${sent} of ${f.bytes} bytes)`);
  }
  onBytes(sent, true);
  sinkDone = true;
  sink.end();
  return {
    processes: Number(f.processes),
    threads: Number(f.threads),
    bytes: sent,
    frozenAt,
    rounds,
    fallback,
    relayed: helper.relayed,
    relay: helper.relay,
    finish: async (commit) => {
      helper.verdict(commit);
      const last = await helper.done;
      if ((last.stopped === '1') !== commit) {
        throw new VosError('checkpoint_failed', `the pod did not ${commit ? 'end' : 'run again'} as asked`);
      }
      return { frozenMs: Number(last.frozen_us) / 1000 };
    },
  };
}

/**
 * Test hook: VOS_TEST_CORRUPT_MIGRATION=OFFSET flips one byte of the image at OFFSET on its way
 * out, so the tests can prove that a damaged stream is refused and the session stays. -1 (unset)
 * in normal use; read once per migration, not per chunk. Safe in shipped builds: it is read from
 * the agent's own environment, which only the user who starts the agent sets (no peer or client
 * can), and a flipped byte is always caught (every record's CRC32C, checked by the target as it
 * arrives): the move is refused and the session keeps running here, as with a damaged link.
 */
function corruptionForTests(): number {
  return Number(process.env.VOS_TEST_CORRUPT_MIGRATION ?? -1);
}

function flipByte(chunk: Buffer, at: number): Buffer {
  const copy = Buffer.from(chunk);
  copy[at]! ^= 0x5a;
  return copy;
}
