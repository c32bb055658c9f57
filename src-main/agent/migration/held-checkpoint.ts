/**
 * The source half of a migration's image: a checkpoint written into a stream (the link to the
 * target) instead of a file, after which the pod stays frozen — *held* — until the migration's
 * outcome is known: `finish(true)` ends it (it runs on the target now), `finish(false)` lets it
 * run again exactly where it was.
 *
 * The agent writes HEADER into the stream, the pod writes its records into a socket the agent
 * forwards (with backpressure: a slow link slows the pod's writing, nothing piles up), then the
 * agent adds SESSION (the screen, taken while frozen) and TRAILER and ends the stream.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Duplex, Writable } from 'node:stream';
import { VosError } from '../../api/errors.js';
import { packageVersion } from '../../base/package-paths.js';
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
  /** Ends the pod (commit) or lets it run again; resolves with how long it was frozen. */
  finish(commit: boolean): Promise<{ frozenMs: number }>;
}

function fieldsOf(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of line.split(' ')) {
    const eq = part.indexOf('=');
    if (eq > 0) out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

/**
 * Freezes the session's pod and writes its image into `sink`; resolves once the whole image is
 * in the sink (and the pod is held). `onBytes` reports progress. Rejects (the pod running again)
 * if the checkpoint fails.
 */
export function checkpointHeld(session: Session, sink: Writable, agentName: string, onBytes: (sent: number) => void): Promise<HeldCheckpoint> {
  const runtime = runtimeFiles();
  if (!session.controlPath || !runtime) {
    return Promise.reject(new VosError('checkpoint_failed', `session ${session.id} does not run in a pod: it cannot move`));
  }
  let sent = 0;
  const image = new ImageAppender((bytes) => {
    sent += bytes.length;
    sink.write(bytes);
  });
  image.header(`vOS ${packageVersion()}`);
  const begun = image.state;
  const child: ChildProcess = spawn(
    runtime.init,
    ['checkpoint', '--wait-screen', '--hold', '--control', session.controlPath, '--records', String(begun.records), '--bytes', String(begun.bytes), '--chain', String(begun.chain)],
    { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] },
  );
  const podStream = child.stdio[3] as Duplex;
  child.stdin!.on('error', () => {
    /* the helper is gone; its exit says why */
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));

  // If the stream to the target breaks (the link is cut, the target went away), the pod's
  // writes must fail rather than wait: it is frozen until its image is out.
  let sinkBroken: string | null = null;
  const breakSink = (why: string): void => {
    if (sinkBroken !== null || sinkDone) return;
    sinkBroken = why;
    podStream.destroy();
  };
  let sinkDone = false;
  sink.once('error', (err: Error) => breakSink(err.message));
  sink.once('close', () => breakSink('the stream to the target closed'));

  // The pod's records, forwarded as they come, at the pace the sink takes them.
  let podEnded = false;
  const podDone = new Promise<void>((resolve) => {
    podStream.once('close', () => resolve());
    podStream.on('data', (data: Buffer) => {
      const chunk = corruptForTests(data, sent);
      sent += chunk.length;
      onBytes(sent);
      if (!sink.write(chunk)) {
        podStream.pause();
        sink.once('drain', () => podStream.resume());
      }
    });
    podStream.once('end', () => {
      podEnded = true;
      resolve();
    });
    podStream.once('error', () => resolve());
  });

  const lines = createInterface({ input: child.stdout! });
  let frozenAt = 0;
  let screen: Promise<{ snapshot: string; cols: number; rows: number }> | null = null;
  let finalLine: (line: string) => void = () => {};
  const final = new Promise<string>((resolve) => (finalLine = resolve));
  let exitedEarly: (why: string) => void = () => {};

  const held = new Promise<HeldCheckpoint>((resolve, reject) => {
    exitedEarly = (why) => reject(new VosError('checkpoint_failed', why));
    lines.on('line', (line) => {
      if (line === 'frozen') {
        frozenAt = Date.now();
        screen = session.settledScreen();
        void screen.catch(() => undefined).then(() => child.stdin!.write('screen-saved\n'));
        return;
      }
      if (line.startsWith('held')) {
        const f = fieldsOf(line);
        void (async () => {
          await podDone;
          if (!podEnded || sent !== Number(f.bytes) || sinkBroken !== null) {
            child.stdin!.write('abort\n');
            reject(new VosError('checkpoint_failed', sinkBroken ?? `the image stream broke (${sent} of ${f.bytes} bytes)`));
            return;
          }
          image.continueFrom({ records: Number(f.records), bytes: Number(f.bytes), chain: Number(f.chain) });
          const shot = await (screen ?? session.settledScreen());
          image.session(sessionRecordOf(session.info(), shot, agentName));
          image.trailer();
          onBytes(sent);
          sinkDone = true;
          sink.end();
          resolve({
            processes: Number(f.processes),
            threads: Number(f.threads),
            bytes: sent,
            frozenAt,
            finish: async (commit) => {
              child.stdin!.write(commit ? 'commit\n' : 'abort\n');
              const last = await final;
              if (!last.startsWith('ok')) throw new VosError('checkpoint_failed', last.replace(/^error /, ''));
              if (commit !== last.startsWith('ok committed')) {
                throw new VosError('checkpoint_failed', `the pod answered "${last}" to ${commit ? 'commit' : 'abort'}`);
              }
              return { frozenMs: Number(fieldsOf(last).frozen_us) / 1000 };
            },
          });
        })();
        return;
      }
      // The last line: an error before the pod was held (it runs again), or the verdict's answer.
      finalLine(line);
      if (line.startsWith('error ')) reject(new VosError('checkpoint_failed', sinkBroken ?? line.slice(6)));
    });
  });
  child.on('error', (err) => exitedEarly(`cannot run ${runtime.init}: ${err.message}`));
  child.on('close', () => {
    finalLine('error the checkpoint helper ended');
    exitedEarly(stderr.trim() || 'the checkpoint helper ended before the image was complete');
  });
  return held;
}

/**
 * Test hook: VOS_TEST_CORRUPT_MIGRATION=OFFSET flips one byte of the image at OFFSET on its way
 * out, so the tests can prove that a damaged stream is refused and the session stays. Unset in
 * normal use.
 */
function corruptForTests(chunk: Buffer, at: number): Buffer {
  const target = Number(process.env.VOS_TEST_CORRUPT_MIGRATION ?? -1);
  if (target < at || target >= at + chunk.length) return chunk;
  const copy = Buffer.from(chunk);
  copy[target - at]! ^= 0x5a;
  return copy;
}
