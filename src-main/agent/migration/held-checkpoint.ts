/**
 * The source half of a migration's image: a checkpoint written into a stream (the link to the
 * target) instead of a file, after which the pod stays frozen — *held* — until the migration's
 * outcome is known: `finish(true)` ends it (it runs on the target now), `finish(false)` lets it
 * run again exactly where it was.
 *
 * The agent writes HEADER into the stream, the pod writes its records into a socket the agent
 * forwards (with backpressure: a slow link slows the pod's writing, nothing piles up), then the
 * agent adds SESSION (the screen, taken while frozen) and TRAILER and ends the stream.
 *
 * Live (`live: true`): before freezing, the pod sends its memory while it runs, in rounds of
 * the pages written since the previous one (PRECOPY records, same stream); frozen, it sends
 * only what changed since. Where the kernel cannot track written pages it says so and the
 * checkpoint goes on stop-and-copy (`fallback` says why).
 */
import type { Writable } from 'node:stream';
import { VosError } from '../../api/errors.js';
import { packageVersion } from '../../base/package-paths.js';
import { startCheckpointHelper } from '../runtime/checkpoint-helper.js';
import { ImageAppender, sessionRecordOf } from '../runtime/image-file.js';
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
  options: { live: boolean; onBytes: (sent: number, frozen: boolean) => void },
): Promise<HeldCheckpoint> {
  const { onBytes } = options;
  const runtime = runtimeFiles();
  if (!session.controlPath || !runtime) {
    throw new VosError('checkpoint_failed', `session ${session.id} does not run in a pod: it cannot move`);
  }
  let sent = 0;
  const image = new ImageAppender((bytes) => {
    sent += bytes.length;
    sink.write(bytes);
  });
  image.header(`vOS ${packageVersion()}`);
  const begun = image.state;
  let frozenAt = 0;
  let rounds = 0;
  let fallback: string | null = null;
  let screen: Promise<{ snapshot: string; cols: number; rows: number }> | null = null;
  const helper = startCheckpointHelper(
    runtime.init,
    ['--control', session.controlPath, '--records', String(begun.records), '--bytes', String(begun.bytes), '--chain', String(begun.chain)],
    {
      image: 'pipe',
      hold: true,
      onFrozen: () => {
        frozenAt = Date.now();
        return (screen = session.settledScreen());
      },
      precopy: options.live
        ? {
            onRound: () => void rounds++,
            onUnavailable: (why) => void (fallback = why),
          }
        : undefined,
    },
  );
  const podStream = helper.image!;

  // If the stream to the target breaks (the link is cut, the target went away), the pod's
  // writes must fail rather than wait: it is frozen until its image is out.
  let sinkBroken: string | null = null;
  let sinkDone = false;
  const breakSink = (why: string): void => {
    if (sinkBroken !== null || sinkDone) return;
    sinkBroken = why;
    podStream.destroy();
  };
  sink.once('error', (err: Error) => breakSink(err.message));
  sink.once('close', () => breakSink('the stream to the target closed'));

  // The pod's records, forwarded as they come, at the pace the sink takes them.
  const corruptAt = corruptionForTests();
  let podEnded = false;
  const podDone = new Promise<void>((resolve) => {
    podStream.once('close', () => resolve());
    podStream.once('error', () => resolve());
    podStream.once('end', () => {
      podEnded = true;
      resolve();
    });
    podStream.on('data', (data: Buffer) => {
      const chunk = corruptAt >= sent && corruptAt < sent + data.length ? flipByte(data, corruptAt - sent) : data;
      sent += chunk.length;
      onBytes(sent, frozenAt !== 0);
      if (!sink.write(chunk)) {
        podStream.pause();
        sink.once('drain', () => podStream.resume());
      }
    });
  });

  let f;
  try {
    f = await helper.held;
  } catch (err) {
    throw sinkBroken !== null ? new VosError('checkpoint_failed', sinkBroken) : err;
  }
  await podDone;
  if (!podEnded || sent !== Number(f.bytes) || sinkBroken !== null) {
    helper.verdict(false);
    throw new VosError('checkpoint_failed', sinkBroken ?? `the image stream broke (${sent} of ${f.bytes} bytes)`);
  }
  image.continueFrom({ records: Number(f.records), bytes: Number(f.bytes), chain: Number(f.chain) });
  const shot = await (screen ?? session.settledScreen());
  image.session(sessionRecordOf(session.info(), shot, agentName));
  image.trailer();
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
 * in normal use; read once per migration, not per chunk.
 */
function corruptionForTests(): number {
  return Number(process.env.VOS_TEST_CORRUPT_MIGRATION ?? -1);
}

function flipByte(chunk: Buffer, at: number): Buffer {
  const copy = Buffer.from(chunk);
  copy[at]! ^= 0x5a;
  return copy;
}
