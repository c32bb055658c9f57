/**
 * `vos-init checkpoint`, driven from the agent: one place that speaks its line protocol, for a
 * checkpoint into a file and for a migration's held checkpoint into a stream. vos-init writes
 * every record of the image (HEADER, the pod's, SESSION, TRAILER); the agent gives it only
 * SESSION's content.
 *
 *   stdout "frozen"          the pod is frozen: the agent marks its screen's point and answers
 *                            "cut\n" on stdin (the pod runs again), then SESSION's content,
 *                            "session <N>\n" and N bytes of JSON (or "no-session <why>\n");
 *                            without "cut" within 2 s the checkpoint is called off and the pod
 *                            runs again (vos-init also takes the content at once, without "cut");
 *   stdout "held k=v ..."    (--hold) the image is complete (the helper has closed its end of
 *                            the stream) and the pod stays frozen until the agent answers
 *                            "commit" or "abort" on stdin;
 *   stdout "precopy k=v ..." (--precopy) a round of pages sent while the pod runs;
 *   stdout "precopy unavailable <why>"  this kernel cannot track written pages: a plain one;
 *   stdout "prewarn <what>"  before the pod is frozen (before any copying too): something a
 *                            restore will not carry, seen while every process runs (a
 *                            connection to another machine); "warn <what>" lines while frozen
 *                            are the exact list;
 *   stdout "outside <who>: <why>"  while frozen: a process without the runtime (a Go or static
 *                            program) that pod init stopped from outside with ptrace;
 *   stdout "full <why>"      (--incremental) the image is whole, not incremental: why;
 *   stdout "ok k=v ..."      the end: the counts (processes, threads, frozen_us, bytes of the
 *                            whole image, ...) and, after a hold, the verdict (stopped);
 *   stdout "error {status}"  the end: it failed, and the pod runs again; the status is one
 *                            line of JSON with its code, message, file and record
 *                            (status-line.ts; plain words are taken too).
 *
 * The image goes to the helper's fd 3: an open file, or a socket the agent reads ('pipe').
 *
 * With `relay` (a move), the held pod hands the helper its connections to outside the pod;
 * "held" then says `relays=N`, and after a "commit" the helper stays on as their anchor
 * (runtime/init/anchor.c), relaying their bytes over its fd 4 (`relay`) until they end.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Duplex } from 'node:stream';
import { VosError } from '../../api/errors.js';
import { packageVersion } from '../../base/package-paths.js';
import { lineFields } from './pod-control.js';
import { replyError } from './status-line.js';

export type HelperFields = Record<string, string>;

/** A connection to outside the pod that a move keeps at the source. */
export interface KeptConnection {
  /** In words: "process 2 (ssh): a TCP connection to 192.0.2.7:22". */
  what: string;
  /** Its local port (0: a Unix socket). */
  localPort: number;
  /** A Unix one's name, given by the restorer of a relayed connection (VOS_RELAY_NAME...); else ''. */
  localName: string;
}

export interface CheckpointHelper {
  /** The image as the pod writes it, when started with image 'pipe'. */
  image: Duplex | null;
  /** With hold: the pod is frozen and its image complete. */
  held: Promise<HelperFields>;
  /** The last line's fields ("ok ...", full_reason from a "full" line, warnings: the "warn" lines
   * and outside: the "outside" lines, each joined by newlines); rejects with the helper's reason. */
  done: Promise<HelperFields>;
  /** With hold: end the pod (commit) or let it run again. */
  verdict(commit: boolean): void;
  /** With relay: the anchor's frames (relay/anchor-frames.ts), once the pod ended by a commit. */
  relay: Duplex | null;
  /** With relay: the connections the image keeps at the source, by object id. */
  relayed: Map<number, KeptConnection>;
}

export function startCheckpointHelper(
  init: string,
  args: string[],
  options: {
    image: number | 'pipe';
    hold?: boolean;
    /**
     * Called once the pod is frozen: resolves once the screen's point is marked (the pod may run
     * again), with SESSION's content to come (the screen at that point).
     */
    sessionContent: () => Promise<{ content: Promise<Buffer> }>;
    /** Each "prewarn" line, as it comes: said before the pod is frozen. */
    onPrewarning?: (warning: string) => void;
    /** Live migration: copy memory while the pod runs first; each round and a fallback reported. */
    precopy?: { onRound: (fields: HelperFields) => void; onUnavailable: (why: string) => void };
    /** With hold: keep the pod's connections to outside it open here (see above). */
    relay?: boolean;
    /** With hold: the mapped files listed in CONTROL.there stay out of the image (a move's target has them). */
    filesThere?: boolean;
  },
): CheckpointHelper {
  const relay = options.hold === true && options.relay === true;
  const flags = [
    ...(options.hold ? ['--hold'] : []),
    ...(options.precopy ? ['--precopy'] : []),
    ...(relay ? ['--relay'] : []),
    ...(options.hold && options.filesThere ? ['--files-there'] : []),
  ];
  const child = spawn(init, ['checkpoint', '--session', '--producer', `vOS ${packageVersion()}`, ...flags, ...args], {
    stdio: ['pipe', 'pipe', 'pipe', options.image, ...(relay ? (['pipe'] as const) : [])],
  });
  child.stdin!.on('error', () => {
    /* the helper is gone; its exit says why */
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));

  let settleHeld!: { resolve: (f: HelperFields) => void; reject: (e: VosError) => void };
  let settleDone!: { resolve: (f: HelperFields) => void; reject: (e: VosError) => void };
  const held = new Promise<HelperFields>((resolve, reject) => (settleHeld = { resolve, reject }));
  const done = new Promise<HelperFields>((resolve, reject) => (settleDone = { resolve, reject }));
  held.catch(() => {}); // a caller without --hold never awaits it
  const end = (line: string): void => {
    if (line.startsWith('ok')) {
      settleDone.resolve({
        ...lineFields(line.slice(2)),
        ...(fullReason !== null ? { full_reason: fullReason } : {}),
        ...(warnings.length ? { warnings: warnings.join('\n') } : {}),
        ...(outside.length ? { outside: outside.join('\n') } : {}),
      });
      settleHeld.reject(new VosError('checkpoint_failed', 'the pod was not held'));
    } else {
      const why =
        replyError(line, 'checkpoint_failed') ?? new VosError('checkpoint_failed', line || stderr.trim() || 'the checkpoint helper failed');
      settleDone.reject(why);
      settleHeld.reject(why);
    }
  };

  let fullReason: string | null = null;
  // What a restore of this image will not carry (the pod's "warn" lines; at most a few dozen kept).
  const warnings: string[] = [];
  // The processes stopped from outside (the pod's "outside" lines; a few dozen kept).
  const outside: string[] = [];
  let prewarnings = 0;
  const relayed = new Map<number, KeptConnection>();
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line.startsWith('full ')) {
      fullReason = line.slice('full '.length);
    } else if (line.startsWith('prewarn ')) {
      if (prewarnings++ < 32) options.onPrewarning?.(line.slice('prewarn '.length, 'prewarn '.length + 1000));
    } else if (line.startsWith('relay ')) {
      const m = /^relay (\d+) (\d+|@vos-relay-[0-9a-f-]{1,60}) (.*)$/.exec(line);
      const local = m?.[2] ?? '0';
      const [localPort, localName] = local.startsWith('@') ? [0, local.slice(1)] : [Number(local), ''];
      if (m && relayed.size < 1024) relayed.set(Number(m[1]), { what: m[3]!.slice(0, 1000), localPort, localName });
    } else if (line.startsWith('warn ')) {
      if (warnings.length < 32) warnings.push(line.slice('warn '.length, 'warn '.length + 1000));
    } else if (line.startsWith('outside ')) {
      if (outside.length < 32) outside.push(line.slice('outside '.length, 'outside '.length + 300));
    } else if (line === 'frozen') {
      const refuse = (err: Error): void =>
        void child.stdin!.write(`no-session the session's record could not be made: ${err.message.replace(/\n/g, ' ')}\n`);
      void options.sessionContent().then(({ content }) => {
        child.stdin!.write('cut\n');
        content.then((bytes) => {
          child.stdin!.write(`session ${bytes.length}\n`);
          child.stdin!.write(bytes);
        }, refuse);
      }, refuse);
    } else if (line.startsWith('precopy unavailable ')) {
      options.precopy?.onUnavailable(line.slice('precopy unavailable '.length));
    } else if (line.startsWith('precopy ')) {
      options.precopy?.onRound(lineFields(line.slice('precopy '.length)));
    } else if (line.startsWith('held')) {
      settleHeld.resolve(lineFields(line.slice(4)));
    } else {
      end(line);
    }
  });
  child.on('error', (err) => end(`error cannot run ${init}: ${err.message}`));
  child.on('close', () => end(`error ${stderr.trim() || 'the checkpoint helper ended before it answered'}`));

  return {
    image: options.image === 'pipe' ? (child.stdio[3] as Duplex) : null,
    held,
    done,
    verdict: (commit) => {
      child.stdin!.write(commit ? 'commit\n' : 'abort\n');
    },
    relay: relay ? (child.stdio[4] as Duplex) : null,
    relayed,
  };
}
