/**
 * The vOS local API, defined once.
 *
 * Every client of an agent speaks it: the `vos` command (Unix socket, length-prefixed JSON
 * frames), the web renderer (WebSocket on 127.0.0.1 with a token) and the Electron renderer (IPC
 * through the preload bridge). The transports differ only in how a message is carried; the
 * messages below are the same on all three.
 *
 * A conversation: the client sends `hello` with its protocol version; the agent answers `hello`
 * with its own and a description of itself (or an `error` and closes on a mismatch). Then the
 * client sends requests (`req`), each answered by exactly one response (`res`) with the same id,
 * and the agent pushes events (`event`) for the sessions the client attached to or watches.
 *
 * No Node or DOM imports here: the renderer compiles this file too.
 */
import type { ErrorCode, ErrorPayload } from './errors.js';

/** Bumped on any incompatible change to the messages below. */
export const PROTOCOL_VERSION = 1;

/** Longest frame a client may send to the agent (bytes of JSON). Input and requests are small. */
export const MAX_CLIENT_FRAME_BYTES = 1024 * 1024;

/** Longest frame the agent sends (a screen snapshot with its scrollback can be large). */
export const MAX_AGENT_FRAME_BYTES = 64 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Data

/**
 * `recoverable`: its program is gone without having ended (its pod was killed, the machine
 * rebooted) and the image store has an image of it; `session.recover` brings it back.
 */
export type SessionState = 'running' | 'exited' | 'recoverable';

export interface ExitStatus {
  /** Exit code when the program exited by itself, else null. */
  code: number | null;
  /** Signal name (e.g. "SIGKILL") when a signal ended it, else null. */
  signal: string | null;
}

export interface SessionInfo {
  /** Short random hex id, unique within the agent. Clients may use any unique prefix. */
  id: string;
  name: string;
  /** The program as started (argv[0]) and its arguments. */
  command: string;
  args: string[];
  cwd: string;
  /** Host pid of the session's program. */
  pid: number;
  /** Milliseconds since the epoch. */
  startedAt: number;
  endedAt: number | null;
  state: SessionState;
  exit: ExitStatus | null;
  cols: number;
  rows: number;
  /** How many viewers are attached right now. */
  viewers: number;
  /** The session runs in a pod (it can be checkpointed). */
  pod: boolean;
  /**
   * Why it cannot be checkpointed or moved, with the fix (it runs without a pod: this machine
   * does not allow the namespaces a pod needs, or the runtime was not built); null or absent
   * when it can.
   */
  cannotCheckpoint?: string | null;
  /** The image this session was restored from, if it was. */
  restoredFrom: string | null;
  /**
   * What the user should know about how it was restored, or null: e.g. that its monotonic
   * clocks jumped (the machine it came from booted at another time, and this kernel has no time
   * namespaces to hide that).
   */
  restoreNote: string | null;
  /**
   * The machine it runs on, for a session of a paired peer (its `id` is then `ID@PEERID`); absent
   * or null for this agent's own sessions.
   */
  peer?: PeerRef | null;
  /**
   * For a `recoverable` session: its latest good image in the store and when it was taken (ms
   * since the epoch). Absent for other states, and when no good image is left.
   */
  recoverable?: { image: string; imageTime: number };
  /**
   * Its connections to outside the session that a move kept open on the machine it came from
   * (`via`), whose bytes that machine relays; absent when none.
   */
  relayed?: RelayedConnection[];
}

/** A connection a moved session keeps through the machine it came from. */
export interface RelayedConnection {
  /** What it is connected to, in words ("a TCP connection to 192.0.2.7:22"). */
  what: string;
  /** The machine that keeps the real connection. */
  via: PeerRef;
}

/** A machine of the community, as a session names it. */
export interface PeerRef {
  /** The device id: SHA-256 of the machine's certificate, 64 hex digits. */
  id: string;
  name: string;
}

/** A machine this agent knows of: found nearby, added by hand, or paired. */
export interface PeerInfo {
  id: string;
  /** XXXX-XXXX-XXXX: the start of the id, for people. */
  shortId: string;
  name: string;
  os: string;
  arch: string;
  kernel: string;
  version: string;
  /** One-minute load average, as the peer last said. */
  load: number | null;
  /** host:port where it was found or reached, most recent first. */
  addresses: string[];
  paired: boolean;
  /** Answering now (mDNS or a live link). */
  online: boolean;
  /** Milliseconds since the epoch. */
  lastSeen: number | null;
  link: 'up' | 'connecting' | 'down';
  /** Something its user should know (e.g. a new certificate under a paired machine's name was refused). */
  warning: string | null;
  /** A pairing in progress with it. */
  pairing: PairingState | null;
}

export interface PairingState {
  /** outgoing: this side asked; incoming: the peer asks, and this side's user must accept. */
  direction: 'outgoing' | 'incoming';
  /** Six digits both machines show. */
  code: string;
  /**
   * The short ids of the machine that asked and of the one asked, in that order: both machines
   * show the same pair beside the code, and each should see its own id in it.
   */
  shortIds: { requester: string; responder: string };
  /**
   * This machine's user confirmed the code: accepted it (incoming, `pair.accept`) or confirmed
   * that the other machine shows the same (outgoing, `pair.confirm`).
   */
  confirmed: boolean;
  /** The other machine says its user did the same (`pair-accept`, `pair-confirm`). */
  peerConfirmed: boolean;
  since: number;
}

export interface CheckpointResult {
  id: string;
  /** The image file. */
  file: string;
  bytes: number;
  processes: number;
  threads: number;
  /** How long the session's processes were stopped. */
  frozenMs: number;
  /** The whole checkpoint, from request to a complete image. */
  wallMs: number;
  /** The session was ended after the checkpoint (--stop). */
  stopped: boolean;
  /** The image's id in the agent's image store; null for an image written to `out`. */
  image: string | null;
  /** Open files whose content is kept with the image (store images only; see ImageInfo.keptFiles). */
  keptFiles: number;
  /** Older images of the session removed by `keep`. */
  removed: string[];
  /** Only what changed since `parent` was written (an incremental image of the store). */
  incremental: boolean;
  /** The store image an incremental one builds on; null for a whole image. */
  parent: string | null;
  /**
   * What a restore of this image will not carry, each in words naming the process: a connection
   * to outside the session ("restored disconnected"), connections waiting on a listening socket
   * ("dropped"). Absent when everything will be carried.
   */
  warnings?: string[];
  /**
   * Processes the vOS runtime is not in (a Go program, a statically linked one), which were
   * stopped from outside with ptrace instead, each as "process 7 (hugo): a Go program". Absent
   * when the runtime stopped them all.
   */
  stoppedFromOutside?: string[];
  /** Asked for an incremental image, got a whole one: why (the first of a session, no write
   * tracking on this kernel, a migration in between, the chain's length bound...). */
  fullReason?: string;
}

/** A program on a terminal of this machine that `session.adopt` could take over. */
export interface AdoptableProcess {
  pid: number;
  /** Its command line (cut to 200 characters). */
  command: string;
  /** Its terminal, as `ps` shows it ("pts/3"). */
  terminal: string;
  /** Its terminal session's leader (adopting any process takes the whole session). */
  session: number;
  /** Whether it is in the terminal's foreground (what the user there is using). */
  foreground: boolean;
}

/** Why an image was taken: by hand, on a schedule, or before the machine shuts down. */
export type ImageKind = 'manual' | 'scheduled' | 'before-shutdown';

/** An image in the agent's store (`<state>/images`). */
export interface ImageInfo {
  id: string;
  /** The session it was taken of (which may have ended since). */
  session: { id: string; name: string };
  /** When it was taken (ms since the epoch). */
  time: number;
  kind: ImageKind;
  /** The image file. */
  file: string;
  /** Its size on disk, without the kept files (which images may share). */
  bytes: number;
  /** Open files whose content is kept with it (recreated at restore where missing), and their bytes. */
  keptFiles: number;
  keptBytes: number;
  /** The image it builds on (incremental images); null for a full one. */
  parent: string | null;
  /** ok, or why it cannot be restored as it is (a cheap look: missing or cut short). */
  state: 'ok' | 'damaged';
  problem: string | null;
}

/**
 * Scheduled checkpoints: the period and retention for new sessions (`everyMs` null: new
 * sessions get no schedule). Shipped: every 15 minutes, keep 3.
 */
export interface ScheduleDefault {
  everyMs: number | null;
  keep: number;
}

/** The shortest and longest period of a schedule (the short end is for tests and demos). */
export const MIN_SCHEDULE_MS = 1000;
export const MAX_SCHEDULE_MS = 30 * 24 * 3600 * 1000;
export const SHIPPED_SCHEDULE_DEFAULT: ScheduleDefault = { everyMs: 15 * 60 * 1000, keep: 3 };

/** How a scheduled checkpoint ended (or was skipped: then `ok` is false and `error` says why). */
export interface ScheduleRun {
  /** When it started (ms since the epoch). */
  at: number;
  ok: boolean;
  /** The image in the store, its bytes on disk and whether it holds only what changed. */
  image?: string;
  bytes?: number;
  incremental?: boolean;
  /**
   * A whole image was written where an incremental one was asked for, and why (no write tracking
   * on this kernel, the first of the session, the chain's length bound...): said once, on the run
   * where the reason is new. A later whole image for the same reason leaves it out, so a client
   * shows it once, not every period; an incremental run in between makes it new again.
   */
  fullReason?: string;
  /** The run did not try: another checkpoint or a migration of the session was under way (not a failure). */
  skipped?: boolean;
  error?: string;
}

/** One session's checkpoint schedule. */
export interface ScheduleInfo {
  session: string;
  name: string;
  /** The period; null: no schedule. */
  everyMs: number | null;
  /** The session's newest images kept in the store after each scheduled checkpoint. */
  keep: number;
  /** When the next run is due (ms since the epoch); null when off or paused. */
  nextRunAt: number | null;
  /** Why the schedule stopped running: the program cannot be checkpointed (schedule.set resumes it). */
  paused: string | null;
  last: ScheduleRun | null;
}

/** What an agent says about itself; a paired machine gets no pid, home or webUrl (0, '', null). */
export interface AgentInfo {
  name: string;
  hostname: string;
  pid: number;
  version: string;
  protocol: number;
  /** The agent's state directory (VOS_HOME). */
  home: string;
  /** This machine's device id (SHA-256 of its certificate) and its short form. */
  id: string;
  shortId: string;
  /** Where it listens for links from peers (host:port), or null. */
  listen: string | null;
  /** Whether it publishes itself and browses with mDNS. */
  mdns: boolean;
  /** The web UI's address with its token, when web mode is on. Only the owner can read it. */
  webUrl: string | null;
  /** Whether new sessions get a pod here (checkpoints, moves); absent from older agents. */
  pods?: PodSupport;
  /** How long its event loop was held up, when it was started with VOS_LOOP_DELAY=1 (local clients only). */
  loopDelay?: LoopDelay;
}

/** Event-loop delay beyond the sampling interval (agent/loop-delay.ts), since `sinceMs` ago. */
export interface LoopDelay {
  sinceMs: number;
  maxMs: number;
  p99Ms: number;
  samples: number;
}

/** Whether this machine lets the agent put sessions in pods, and if not why and what to do. */
export interface PodSupport {
  ok: boolean;
  /** Why not (e.g. Ubuntu's AppArmor rule on unprivileged user namespaces), or null. */
  reason: string | null;
  /** What to do about it, or null. */
  fix: string | null;
  /** Whether restores can keep the program's clocks (time namespaces). */
  timeNamespaces: boolean;
}

export interface ScreenText {
  id: string;
  cols: number;
  rows: number;
  cursor: { x: number; y: number };
  /** The visible rows, top to bottom, trailing blanks trimmed. */
  lines: string[];
}

export interface AttachResult {
  session: SessionInfo;
  /**
   * The screen and scrollback as terminal escape sequences (xterm's serialize format). Writing it
   * to a fresh terminal of the session's size reproduces the screen; live output follows it with
   * nothing lost or repeated.
   */
  snapshot: string;
}

// ---------------------------------------------------------------------------------------------
// Requests

export interface CreateSessionParams {
  command: string;
  args?: string[];
  name?: string;
  cwd?: string;
  /** Environment for the program; the agent's own when absent. */
  env?: Record<string, string>;
  cols?: number;
  rows?: number;
}

/**
 * `agent.stop`: with `checkpointFirst`, every running session is first checkpointed into the
 * store (kind `before-shutdown`), all within `timeoutMs` (default 30 s); with `endSessions`,
 * every session is ended afterwards (those checkpointed stay recoverable for the next agent).
 */
export interface AgentStopParams {
  endSessions?: boolean;
  checkpointFirst?: boolean;
  timeoutMs?: number;
}

export interface AgentStopResult {
  stopping: true;
  /** Sessions checkpointed before stopping (ids). */
  checkpointed: string[];
  /** Sessions that could not be checkpointed, with why. */
  failed: { id: string; reason: string }[];
}

/** A session reference: its id, a unique id prefix, or its exact name. */
export interface SessionRef {
  id: string;
}

export interface ApiMethods {
  /** `resetLoopDelay`: the loop delay starts over after this reading (see AgentInfo.loopDelay). */
  'agent.info': { params: { resetLoopDelay?: boolean }; result: AgentInfo };
  /** Turns on the web UI if it is off; returns its address either way. */
  'agent.web': { params: { port?: number }; result: { url: string } };
  /**
   * Stops the agent after the reply (local clients only). Sessions under a terminal host keep
   * running; the next agent of this state directory finds them again. See AgentStopParams for
   * a checkpoint first and ending the sessions; the reply comes once those are done.
   */
  'agent.stop': { params: AgentStopParams; result: AgentStopResult };
  /** This agent's sessions; with `all`, those of every online paired peer too. */
  'session.list': { params: { all?: boolean }; result: SessionInfo[] };
  /**
   * Like `session.list`, and from now on this client receives the list events; with `all`, for
   * the sessions of paired peers too.
   */
  'session.watch': { params: { all?: boolean }; result: SessionInfo[] };
  'session.create': { params: CreateSessionParams; result: SessionInfo };
  'session.kill': { params: SessionRef & { signal?: string }; result: SessionInfo };
  /** Forget a session. A running one is refused unless `force`, which kills it first. */
  'session.remove': { params: SessionRef & { force?: boolean }; result: { id: string } };
  /** Columns times rows may be at most 500,000 (the agent keeps the screen in memory). */
  'session.resize': { params: SessionRef & { cols: number; rows: number }; result: SessionInfo };
  'session.input': { params: SessionRef & { data: string }; result: Record<string, never> };
  'session.screen': { params: SessionRef; result: ScreenText };
  /**
   * Resolves once the visible screen, rows joined with "\n", matches `pattern`; fails with
   * `timeout` after `timeoutMs`, or `session_exited` if the program ends first without a match.
   * `pattern` (at most 4096 characters) is in RE2 syntax, matched in time linear in the screen:
   * what JavaScript regular expressions have except backreferences (\1, \k<name>) and
   * lookaround ((?=, (?!, (?<=, (?<!); a pattern using them is refused with `invalid_params`
   * when the request arrives. `flags` are i, m, s (u, g, y are accepted and change nothing) and
   * default to "m", so ^ and $ match at each row.
   */
  'session.wait': {
    params: SessionRef & { pattern: string; flags?: string; timeoutMs: number };
    result: ScreenText;
  };
  /**
   * Become a viewer: the reply holds a snapshot, then `session.output` events follow. A viewer
   * that gives its size takes part in "resize follows the most recent active viewer": attaching
   * only watches (the size is taken when no viewer is active), unless `take` (a terminal
   * attached to be used, as `vos attach`, which cannot show another size well).
   */
  'session.attach': { params: SessionRef & { cols?: number; rows?: number; take?: boolean }; result: AttachResult };
  'session.detach': { params: SessionRef; result: Record<string, never> };
  /**
   * A viewer's screen drawn again (after the viewer drew something of its own over it): a
   * `session.resync` event with the screen as it is now follows, in the stream where that
   * point is (the output before it is in it, the output after it follows it). Not a viewer:
   * refused.
   */
  'session.redraw': { params: SessionRef; result: Record<string, never> };
  /**
   * Writes an image of the session's pod to `out` (an absolute path), or by default into the
   * agent's image store (`keep`: then the session's older images beyond that many are removed).
   * Either way the write is atomic: a failure leaves whatever was there. The session keeps
   * running unless `stop`.
   */
  'session.checkpoint': { params: SessionRef & { out?: string; stop?: boolean; keep?: number; incremental?: boolean }; result: CheckpointResult };
  /**
   * A new session whose program continues where the image was taken: an image `file` (an
   * absolute path) or an `image` of the store (id or unique id prefix), exactly one of them.
   */
  'session.restore': { params: { file?: string; image?: string; name?: string; takeAsIs?: string[] }; result: SessionInfo };
  /**
   * Adopts a program that runs on another terminal (process `pid` of this user, and the rest of
   * its terminal session: a shell and its jobs): its terminal descriptors are switched to the new
   * session's, which it then has as its controlling terminal; the old terminal says where it went.
   * The session is listed, viewed, typed into and checkpointed like any other (its processes are
   * stopped from outside; a restore puts them into a pod with a fresh pid namespace, with the same
   * pids). Refused with the reason and what to change: another user's process, a set-user-ID
   * program, `kernel.yama.ptrace_scope` 1 to 3.
   */
  'session.adopt': { params: { pid: number; name?: string }; result: SessionInfo };
  /**
   * The programs `session.adopt` could take over: this user's processes that run on a terminal
   * (not a vOS session's), by terminal, session leader first. Adopting one takes its terminal
   * session (all of a terminal's entries with the same `session`).
   */
  'session.adoptable': { params: Record<string, never>; result: AdoptableProcess[] };
  /**
   * Brings back a recoverable session (`id`) or all of them (`all`) from its latest good image,
   * falling back to the image before when the latest is damaged or does not restore (the
   * session's `restoreNote` says so). A session keeps its name, and its id when that is free.
   * With `all`, a session that cannot be recovered fails the request after the others were
   * tried (the message names each, with why).
   */
  /** `takeAsIs` (with `id` only): kept files the program may use as they are now (as in session.restore). */
  'session.recover': { params: { id?: string; all?: boolean; takeAsIs?: string[] }; result: SessionInfo[] };
  /** The images in the store, newest first (`session`: of that session only, by id, id prefix or name). */
  'image.list': { params: { session?: string }; result: ImageInfo[] };
  /** Removes an image of the store, and the kept files no other image needs. */
  'image.remove': { params: { image: string }; result: { id: string } };

  /**
   * Checkpoints the session into the store every `everyMs` (at least 1000), keeping its newest
   * `keep` images; resumes a paused schedule. Local sessions only.
   */
  'schedule.set': { params: { session: string; everyMs: number; keep: number }; result: ScheduleInfo };
  /** Turns the session's schedule off (`everyMs` null in the result). */
  'schedule.off': { params: { session: string }; result: ScheduleInfo };
  /** The default for new sessions and every session's schedule (those turned off included). */
  'schedule.list': { params: Record<string, never>; result: { default: ScheduleDefault; schedules: ScheduleInfo[] } };
  /** Changes the default for new sessions (`off`: none); with no field, just returns it. */
  'schedule.default': { params: { everyMs?: number; keep?: number; off?: boolean }; result: ScheduleDefault };

  /** The machines this agent knows of. */
  'peer.list': { params: Record<string, never>; result: PeerInfo[] };
  /** Like `peer.list`, and from now on `peer.*` and `pair.requested` events. */
  'peer.watch': { params: Record<string, never>; result: PeerInfo[] };
  /** Connects to an agent at HOST:PORT (where multicast does not reach) and remembers it. */
  'peer.add': { params: { address: string }; result: PeerInfo };
  /** Forgets the pairing, on both sides where the peer is reachable. */
  'peer.unpair': { params: PeerSelector; result: PeerInfo };
  /** Forgets a machine that is not paired (its addresses too; no more dialing it); listed again if seen again. */
  'peer.forget': { params: PeerSelector; result: Record<string, never> };
  /**
   * The sessions of every paired machine whose link is up, machine by machine, each with why
   * they could not be had (it no longer trusts this machine, it did not answer within 10 s).
   */
  'peer.sessions': { params: Record<string, never>; result: PeerSessions[] };
  /**
   * Asks the peer to pair. Returns once the two machines have exchanged their nonces (a few
   * seconds at most) with the code both show. This machine's user then confirms that the peer
   * shows the same code (`pair.confirm`) and the peer's user accepts it there; `pair.wait`
   * waits for both.
   */
  'pair.request': { params: PeerSelector; result: { peer: PeerInfo; code: string } };
  /**
   * The asking side's user confirms that the peer shows `code`, the code this machine shows:
   * paired once the peer's user accepted too (before or after). Another code cancels the
   * pairing on both sides (`wrong_code`): a machine in the middle, or the wrong machine.
   */
  'pair.confirm': { params: PeerSelector & { code: string }; result: PeerInfo };
  /**
   * Resolves when the pairing in progress with the peer (either direction) is done: both users
   * confirmed the code; `pair_rejected`, `wrong_code` or `timeout` otherwise.
   */
  'pair.wait': { params: PeerSelector & { timeoutMs: number }; result: PeerInfo };
  /** Pairing requests in progress, both directions. */
  'pair.pending': { params: Record<string, never>; result: PeerInfo[] };
  /**
   * Accepts a peer's request; `code` must be the one this machine shows for it. Paired once the
   * asking side's user confirmed the code there too (before or after; `pair.wait`).
   */
  'pair.accept': { params: PeerSelector & { code: string }; result: PeerInfo };
  'pair.reject': { params: PeerSelector; result: PeerInfo };

  /**
   * Moves a running session to a paired machine, as one transaction: it ends here only once it
   * runs there; on any failure it goes on here where it was. `migration.progress` events go to
   * the caller meanwhile; viewers of the session get `session.moved`.
   */
  'session.migrate': {
    params: SessionRef & PeerSelector & { mode?: MigrationMode; sendFilesUpTo?: number; takeAsIs?: string[] };
    result: MigrationResult;
  };

  // Between agents (a paired peer moving a session here); not for people.
  /**
   * Checks that a session can come here; returns the migration's id for the image stream, and
   * the open files this machine lacks that the source is to send along (a link stream each).
   */
  /** `mappedHere`: the offered mapped files this machine has alike (absent from older targets). */
  'migration.offer': { params: MigrationOffer; result: { migration: string; wanted: string[]; mappedHere?: string[] } };
  /** Resolves when every file sent along is in place here (checked against its hash). */
  'migration.files': { params: { migration: string }; result: { received: number } };
  /** Resolves when the streamed image is restored and held, ready to run. */
  'migration.result': { params: { migration: string }; result: SessionInfo };
  /** The source has ended the original: let the restored session run. */
  'migration.go': { params: { migration: string }; result: SessionInfo };
  /** The source gave up: end the restored (held) session. */
  'migration.abort': { params: { migration: string }; result: Record<string, never> };
}

/** What a migration reports while it runs (to the client that asked for it). */
export type MigrationPhase = 'checking' | 'copying' | 'freezing' | 'sending' | 'restoring' | 'switching' | 'done' | 'failed';

/**
 * live (the default): the memory is copied while the session runs, in rounds, and only what
 * changed since is sent while it is stopped; where the kernel cannot track written pages it
 * moves stop-and-copy instead, and says why. stop-and-copy: stopped for the whole copy.
 */
export type MigrationMode = 'live' | 'stop-and-copy';

export interface MigrationResult {
  /** The session's id here, before it moved. */
  from: string;
  /** The session on its new machine (`id` is `ID@PEERID`). */
  session: SessionInfo;
  /** Image bytes sent over the link. */
  bytes: number;
  /** How long the program was stopped: frozen here until it ran there. */
  downtimeMs: number;
  wallMs: number;
  /** How it moved, and for live, the rounds of copying while it ran. */
  mode: MigrationMode;
  rounds: number;
  /** Asked for live but moved stop-and-copy: why (this kernel cannot track written pages...). */
  fallback: string | null;
  /** Open files the target lacked, sent along (they are the target's from then on). */
  filesSent: string[];
  /**
   * Its connections to outside the session, kept open here and relayed to it there (in words).
   * They last as long as this agent and the link do.
   */
  relayed: string[];
}

/** Open files a target lacks are sent along up to this size each, unless the caller says otherwise. */
export const DEFAULT_SEND_FILES_UP_TO = 16 * 1024 * 1024;

/** A regular file a migrating session has open: the target must have the same one. */
export interface FileNeed {
  path: string;
  size: number;
  /** SHA-256 of the content (of its first and last MiB for files over HASH_WHOLE_LIMIT). */
  hash: string;
  /** Permission bits, for a copy sent along. */
  mode: number;
  /**
   * Every descriptor the session has on it is open with O_APPEND (a shell's `>>`, a log). Other
   * content where it goes is taken as it is, and said in the restore note: the program writes at
   * the end of whatever is there (one that also reads through it sees the file as it is now).
   */
  appendOnly?: boolean;
  /**
   * The user asked to take it as it is where the session goes, whatever its content there
   * (`--take-as-is`: a REPL's history file it rewrites whole, say); said in the restore note.
   */
  asIs?: boolean;
}

/** An address a migrating session listens on: the target must be able to listen there too. */
export interface ListenNeed {
  kind: 'tcp' | 'unix';
  /** A numeric IP address (tcp), an absolute socket path or an abstract name as /proc/net/unix
   * writes it, "@name" (unix). */
  address: string;
  /** The TCP port; 0 for a Unix path. */
  port: number;
}

/** What it takes to start a session's terminal again elsewhere: its program and its size. */
export type SessionShape = Pick<SessionInfo, 'name' | 'command' | 'args' | 'cwd' | 'cols' | 'rows'>;

/** What a source tells the target before a migration (peer to peer). */
export interface MigrationOffer extends SessionShape {
  /** The session's id where it runs now: it keeps it on the target unless a session there has
   * it (scripts that name it go on working). Absent from older sources. */
  id?: string;
  /** Working directories of the session's processes: they must exist there. */
  dirs: string[];
  files: FileNeed[];
  /** About how big the image will be. */
  bytes: number;
  arch: string;
  /** A file the target lacks and is at most this big may be sent along; bigger: refused. */
  sendUpTo: number;
  /** Where the session listens (ports, socket paths): taken on the target, the move is refused
   * before anything stops. Absent from older sources. */
  listeners?: ListenNeed[];
  /** The files the session holds locks on (absolute paths): one locked on the target now (by
   * another program, or by the session itself on the same machine) refuses the move before
   * anything stops. Absent from older sources. */
  locks?: string[];
  /** Files a program of the session knows by their inode (an SQLite database): unless the
   * target's file at that path is that very inode (shared storage), the move is refused before
   * anything stops. Absent from older sources. */
  inodeBound?: InodeBound[];
  /** The files its programs map (executables, libraries): those the target has alike (same size
   * and mtime) stay out of the image. Absent from older sources. */
  mappedFiles?: MappedFile[];
}

/** A file a migrating session's programs map (MigrationOffer.mappedFiles). */
export interface MappedFile {
  path: string;
  size: number;
  /** Its mtime in nanoseconds, in decimal (beyond a number's precision). */
  mtimeNs: string;
}

/** An open file and its inode where the session runs now (MigrationOffer.inodeBound). */
export interface InodeBound {
  path: string;
  inode: number;
}

/** One paired machine's sessions, or why there are none to show. */
export interface PeerSessions {
  peer: PeerRef;
  sessions: SessionInfo[];
  /** Why its sessions could not be listed (then `sessions` is empty), or null. */
  problem: string | null;
  /** The code of that problem (`not_paired`, `timeout`, `peer_offline`, ...), or null. */
  code: ErrorCode | null;
}

/** A peer: an id prefix (hex or the short form) or its exact name. */
export interface PeerSelector {
  peer: string;
}

export type Method = keyof ApiMethods;
export type ParamsOf<M extends Method> = ApiMethods[M]['params'];
export type ResultOf<M extends Method> = ApiMethods[M]['result'];

// ---------------------------------------------------------------------------------------------
// Events

export type ApiEvent =
  /** To watchers. */
  | { event: 'session.added'; session: SessionInfo }
  | { event: 'session.changed'; session: SessionInfo }
  /**
   * The session is forgotten; or, with `unreachable` (why), a paired machine's session whose
   * machine can no longer be reached: a watcher may keep showing it, greyed, until it comes back
   * (`session.added` when the machine is back) or is removed for good (`session.removed` without
   * `unreachable`, when the machine is back without it).
   */
  | { event: 'session.removed'; id: string; unreachable?: string }
  /** To viewers of `id`: program output, in order, as it came from the pty. */
  | { event: 'session.output'; id: string; data: string }
  /**
   * To a viewer that fell behind (its connection did not drain) and has caught up again: output
   * was skipped; replace the screen with this snapshot, then live output continues.
   */
  | { event: 'session.resync'; id: string; snapshot: string }
  /** To viewers of `id`, after the program ended (the `session.changed` equivalent for viewers). */
  | { event: 'session.exited'; id: string; session: SessionInfo }
  /**
   * To viewers of a peer's session (`id` is `ID@PEERID`): the link to that machine went away. The
   * session may well go on running there; attach again when the machine is back.
   */
  | { event: 'session.disconnected'; id: string; reason: string }
  /**
   * To viewers and watchers of `id`: the session moved to another machine and goes on there as
   * `to` (an `ID@PEERID` reference). A viewer attaches to `to` to keep following it.
   */
  | { event: 'session.moved'; id: string; to: string; peer: PeerRef }
  /** To the client that asked for a migration. */
  | { event: 'migration.progress'; id: string; peer: PeerRef; phase: MigrationPhase; sent: number; total: number; detail: string | null }
  /**
   * To the client that asked for a checkpoint (`session.checkpoint`; `id` as it asked), before
   * the session is frozen: something a restore of the image will not carry (a connection to
   * another machine). The result's `warnings` are the exact list, made while frozen.
   */
  | { event: 'checkpoint.warning'; id: string; warning: string }
  /** To local watchers (`session.watch`): a session's schedule changed, ran, failed or paused. */
  | { event: 'schedule.changed'; schedule: ScheduleInfo }
  /** To peer watchers: a machine appeared or changed (online, paired, link, pairing...). */
  | { event: 'peer.changed'; peer: PeerInfo }
  | { event: 'peer.removed'; id: string }
  /** To peer watchers: a machine asks to pair; its user should compare the code and accept. */
  | { event: 'pair.requested'; peer: PeerInfo; code: string };

export type EventName = ApiEvent['event'];

/** Every event, at run time (documentation checks); the compiler keeps it complete. */
export const EVENT_NAMES = [
  'session.added',
  'session.changed',
  'session.removed',
  'session.output',
  'session.resync',
  'session.exited',
  'session.disconnected',
  'session.moved',
  'migration.progress',
  'checkpoint.warning',
  'schedule.changed',
  'peer.changed',
  'peer.removed',
  'pair.requested',
] as const satisfies readonly EventName[];

/** Fails to compile while an event of ApiEvent is missing from EVENT_NAMES. */
export type EveryEventNamed = [Exclude<EventName, (typeof EVENT_NAMES)[number]>] extends [never] ? true : never;
const everyEventNamed: EveryEventNamed = true;
void everyEventNamed;

// ---------------------------------------------------------------------------------------------
// Wire messages

export interface ClientHello {
  t: 'hello';
  protocol: number;
  /** Free-form label for logs ("vos-cli", "web", "electron"). */
  client: string;
}

export interface RequestMessage<M extends Method = Method> {
  t: 'req';
  id: number;
  method: M;
  params: ParamsOf<M>;
}

export type ClientMessage = ClientHello | RequestMessage;

export interface AgentHello {
  t: 'hello';
  protocol: number;
  agent: AgentInfo;
}

export type ResponseMessage =
  | { t: 'res'; id: number; ok: true; result: unknown }
  | { t: 'res'; id: number; ok: false; error: ErrorPayload };

/** A failure not tied to one request (bad frame, version mismatch); the agent closes after it. */
export interface FatalMessage {
  t: 'error';
  error: ErrorPayload;
}

export type EventMessage = { t: 'event' } & ApiEvent;

export type AgentMessage = AgentHello | ResponseMessage | EventMessage | FatalMessage;
