/**
 * Runtime checks for what a client sends. Everything that arrives from a transport is `unknown`
 * until it has passed through here; the agent never trusts a field it has not checked.
 */
import { VosError } from './errors.js';
import { MAX_SCHEDULE_MS, MIN_SCHEDULE_MS, type ClientMessage, type Method, type ParamsOf } from './protocol.js';

type Checker = (params: Record<string, unknown>) => void;

export const MAX_ARGS = 4096;
export const MAX_STRING = 64 * 1024;
export const MAX_TERMINAL_DIMENSION = 4096;
export const MAX_SCREEN_CELLS = 500_000;
const MAX_WAIT_PATTERN = 4096;
/** The longest an agent's stop may spend checkpointing its sessions first (10 minutes). */
export const MAX_STOP_TIMEOUT_MS = 600_000;

function fail(message: string): never {
  throw new VosError('invalid_params', message);
}

function str(p: Record<string, unknown>, key: string, optional = false): void {
  const v = p[key];
  if (v === undefined && optional) return;
  if (typeof v !== 'string') fail(`"${key}" must be a string`);
  if (v.length > MAX_STRING) fail(`"${key}" is longer than ${MAX_STRING} characters`);
}

function nonEmpty(p: Record<string, unknown>, key: string): void {
  str(p, key);
  if ((p[key] as string).length === 0) fail(`"${key}" must not be empty`);
}

function bool(p: Record<string, unknown>, key: string): void {
  const v = p[key];
  if (v !== undefined && typeof v !== 'boolean') fail(`"${key}" must be true or false`);
}

function int(p: Record<string, unknown>, key: string, min: number, max: number, optional = false): void {
  const v = p[key];
  if (v === undefined && optional) return;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    fail(`"${key}" must be a whole number from ${min} to ${max}`);
  }
}

function size(p: Record<string, unknown>, optional: boolean): void {
  int(p, 'cols', 1, MAX_TERMINAL_DIMENSION, optional);
  int(p, 'rows', 1, MAX_TERMINAL_DIMENSION, optional);
  if ((p.cols === undefined) !== (p.rows === undefined)) fail('"cols" and "rows" go together');
  // The agent keeps every session's screen in memory (about 12 bytes a cell): 4096 x 4096 cost
  // 190 MiB for one request. The cap is more than an 8K display shows with a small font.
  if (p.cols !== undefined && (p.cols as number) * (p.rows as number) > MAX_SCREEN_CELLS) {
    fail(`a terminal of ${p.cols as number} x ${p.rows as number} is too large: columns times rows may be at most ${MAX_SCREEN_CELLS}`);
  }
}

/** An image of the store: its id or a unique prefix of it (never a path). */
function imageRef(p: Record<string, unknown>): void {
  nonEmpty(p, 'image');
  if (!/^[A-Za-z0-9-]{1,64}$/.test(p.image as string)) fail('"image" must be an image id (see vos images)');
}

function stringArray(p: Record<string, unknown>, key: string): void {
  const v = p[key];
  if (v === undefined) return;
  if (!Array.isArray(v) || v.length > MAX_ARGS || v.some((s) => typeof s !== 'string')) {
    fail(`"${key}" must be a list of at most ${MAX_ARGS} strings`);
  }
}

/** A list of absolute paths (the files a restore or a move takes as they are). */
function absolutePaths(p: Record<string, unknown>, key: string): void {
  stringArray(p, key);
  const v = p[key] as string[] | undefined;
  if (v?.some((s) => !s.startsWith('/'))) fail(`"${key}" must hold absolute paths`);
}

function stringMap(p: Record<string, unknown>, key: string): void {
  const v = p[key];
  if (v === undefined) return;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`"${key}" must be an object of strings`);
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string' || k.includes('=') || k.includes('\0') || val.includes('\0')) {
      fail(`"${key}.${k}" must be a string without "=" in the name and without NUL bytes`);
    }
  }
}

const sessionRef: Checker = (p) => nonEmpty(p, 'id');
const peerRef: Checker = (p) => nonEmpty(p, 'peer');
const none: Checker = () => {};
/** A session of this agent (schedules are local: a peer's session is scheduled on its machine). */
const scheduleSession: Checker = (p) => {
  nonEmpty(p, 'session');
  const ref = p.session as string;
  const at = ref.lastIndexOf('@');
  if (at > 0 && at < ref.length - 1) {
    fail(`"${ref}" is a session of another machine: schedule it with vos schedule on that machine`);
  }
};
const listAll: Checker = (p) => bool(p, 'all');

const CHECKERS: { [M in Method]: Checker } = {
  'agent.info': (p) => bool(p, 'resetLoopDelay'),
  'agent.web': (p) => int(p, 'port', 0, 65535, true),
  'agent.stop': (p) => {
    bool(p, 'endSessions');
    bool(p, 'checkpointFirst');
    int(p, 'timeoutMs', 1000, MAX_STOP_TIMEOUT_MS, true);
    if (p.timeoutMs !== undefined && p.checkpointFirst !== true) fail('"timeoutMs" bounds the checkpoint: it goes with "checkpointFirst"');
  },
  'session.list': listAll,
  'session.watch': listAll,
  'session.create': (p) => {
    nonEmpty(p, 'command');
    stringArray(p, 'args');
    str(p, 'name', true);
    str(p, 'cwd', true);
    stringMap(p, 'env');
    size(p, true);
  },
  'session.kill': (p) => {
    sessionRef(p);
    str(p, 'signal', true);
  },
  'session.remove': (p) => {
    sessionRef(p);
    bool(p, 'force');
  },
  'session.resize': (p) => {
    sessionRef(p);
    size(p, false);
  },
  'session.input': (p) => {
    sessionRef(p);
    str(p, 'data');
  },
  'session.screen': sessionRef,
  'session.wait': (p) => {
    sessionRef(p);
    nonEmpty(p, 'pattern');
    // RE2's time is linear in the screen's size times the pattern's: keep the pattern short.
    if ((p.pattern as string).length > MAX_WAIT_PATTERN) fail(`"pattern" is longer than ${MAX_WAIT_PATTERN} characters`);
    str(p, 'flags', true);
    if (p.flags !== undefined && !/^[imsugy]*$/.test(p.flags as string)) fail('"flags" may hold only i, m, s (and u, g, y, which change nothing)');
    int(p, 'timeoutMs', 0, 24 * 3600 * 1000);
  },
  'session.attach': (p) => {
    sessionRef(p);
    size(p, true);
    bool(p, 'take');
  },
  'session.detach': sessionRef,
  'session.redraw': sessionRef,
  'session.checkpoint': (p) => {
    sessionRef(p);
    str(p, 'out', true);
    if (p.out !== undefined && !(p.out as string).startsWith('/')) fail('"out" must be an absolute path');
    bool(p, 'stop');
    int(p, 'keep', 1, 100_000, true);
    if (p.keep !== undefined && p.out !== undefined) fail('"keep" is for images in the store, not with "out"');
    bool(p, 'incremental');
    if (p.incremental === true && p.out !== undefined) fail('"incremental" is for images in the store, not with "out"');
  },
  'session.restore': (p) => {
    if ((p.file === undefined) === (p.image === undefined)) fail('give exactly one of "file" and "image"');
    if (p.file !== undefined) {
      nonEmpty(p, 'file');
      if (!(p.file as string).startsWith('/')) fail('"file" must be an absolute path');
    } else imageRef(p);
    str(p, 'name', true);
    absolutePaths(p, 'takeAsIs');
  },
  'session.adoptable': none,
  'session.adopt': (p) => {
    int(p, 'pid', 1, 0x3fffffff);
    str(p, 'name', true);
  },
  'session.recover': (p) => {
    bool(p, 'all');
    if ((p.id === undefined) === (p.all !== true)) fail('give either "id" or "all": true');
    if (p.id !== undefined) nonEmpty(p, 'id');
    absolutePaths(p, 'takeAsIs');
    // The paths are one session's files: a path another session does not have open refuses it.
    if (p.takeAsIs !== undefined && p.all === true) fail('"takeAsIs" goes with one session ("id"), not with "all"');
  },
  'image.list': (p) => {
    if (p.session !== undefined) nonEmpty(p, 'session');
  },
  'image.remove': imageRef,
  'schedule.set': (p) => {
    scheduleSession(p);
    int(p, 'everyMs', MIN_SCHEDULE_MS, MAX_SCHEDULE_MS);
    int(p, 'keep', 1, 100_000);
  },
  'schedule.off': scheduleSession,
  'schedule.list': none,
  'schedule.default': (p) => {
    int(p, 'everyMs', MIN_SCHEDULE_MS, MAX_SCHEDULE_MS, true);
    int(p, 'keep', 1, 100_000, true);
    bool(p, 'off');
    if (p.off === true && p.everyMs !== undefined) fail('give "everyMs" or "off", not both');
  },
  'peer.list': none,
  'peer.watch': none,
  'peer.add': (p) => nonEmpty(p, 'address'),
  'peer.unpair': peerRef,
  'peer.forget': peerRef,
  'peer.sessions': none,
  'pair.request': peerRef,
  'pair.wait': (p) => {
    peerRef(p);
    int(p, 'timeoutMs', 0, 24 * 3600 * 1000);
  },
  'pair.confirm': (p) => {
    peerRef(p);
    nonEmpty(p, 'code');
  },
  'pair.pending': none,
  'pair.accept': (p) => {
    peerRef(p);
    nonEmpty(p, 'code');
  },
  'pair.reject': peerRef,
  'session.migrate': (p) => {
    sessionRef(p);
    peerRef(p);
    if (p.mode !== undefined && p.mode !== 'live' && p.mode !== 'stop-and-copy') {
      fail("'mode' must be 'live' or 'stop-and-copy'");
    }
    int(p, 'sendFilesUpTo', 0, Number.MAX_SAFE_INTEGER, true);
    absolutePaths(p, 'takeAsIs');
  },
  'migration.offer': (p) => {
    for (const k of ['name', 'command', 'cwd', 'arch']) str(p, k);
    // Becomes part of file names here (pods/ID.sock): only an id as agents make them.
    if (p.id !== undefined && (typeof p.id !== 'string' || !/^[0-9a-f]{6,16}$/.test(p.id))) fail('"id" must be a session id (6 to 16 hex digits)');
    stringArray(p, 'args');
    stringArray(p, 'dirs');
    size(p, false);
    int(p, 'bytes', 0, Number.MAX_SAFE_INTEGER);
    int(p, 'sendUpTo', 0, Number.MAX_SAFE_INTEGER);
    const files = p.files;
    if (!Array.isArray(files) || files.length > MAX_ARGS) fail('"files" must be a list');
    for (const f of files as unknown[]) {
      if (typeof f !== 'object' || f === null) fail('"files" must hold objects');
      const r = f as Record<string, unknown>;
      str(r, 'path');
      str(r, 'hash');
      int(r, 'size', 0, Number.MAX_SAFE_INTEGER);
      int(r, 'mode', 0, 0o7777);
      if (r.appendOnly !== undefined && typeof r.appendOnly !== 'boolean') fail('a file\'s "appendOnly" must be true or false');
      if (r.asIs !== undefined && typeof r.asIs !== 'boolean') fail('a file\'s "asIs" must be true or false');
    }
    const listeners = p.listeners;
    if (listeners !== undefined) {
      if (!Array.isArray(listeners) || listeners.length > 256) fail('"listeners" must be a list of at most 256');
      for (const l of listeners as unknown[]) {
        if (typeof l !== 'object' || l === null) fail('"listeners" must hold objects');
        const r = l as Record<string, unknown>;
        if (r.kind !== 'tcp' && r.kind !== 'unix') fail('a listener\'s "kind" must be "tcp" or "unix"');
        str(r, 'address');
        if ((r.address as string).length > 4096) fail('a listener\'s "address" is too long');
        int(r, 'port', 0, 65535);
      }
    }
    const locks = p.locks;
    if (locks !== undefined) {
      if (!Array.isArray(locks) || locks.length > 256) fail('"locks" must be a list of at most 256');
      for (const l of locks as unknown[]) if (typeof l !== 'string' || l.length > 4096) fail('"locks" must hold paths');
    }
    const bound = p.inodeBound;
    if (bound !== undefined) {
      if (!Array.isArray(bound) || bound.length > 64) fail('"inodeBound" must be a list of at most 64');
      for (const b of bound as unknown[]) {
        if (typeof b !== 'object' || b === null) fail('"inodeBound" must hold objects');
        const r = b as Record<string, unknown>;
        str(r, 'path');
        if ((r.path as string).length > 4096) fail('an "inodeBound" path is too long');
        int(r, 'inode', 0, Number.MAX_SAFE_INTEGER);
      }
    }
    const mapped = p.mappedFiles;
    if (mapped !== undefined) {
      if (!Array.isArray(mapped) || mapped.length > 1024) fail('"mappedFiles" must be a list of at most 1024');
      for (const f of mapped as unknown[]) {
        if (typeof f !== 'object' || f === null) fail('"mappedFiles" must hold objects');
        const r = f as Record<string, unknown>;
        str(r, 'path');
        if ((r.path as string).length > 4096) fail('a "mappedFiles" path is too long');
        int(r, 'size', 0, Number.MAX_SAFE_INTEGER);
        if (typeof r.mtimeNs !== 'string' || !/^\d{1,20}$/.test(r.mtimeNs)) fail('a "mappedFiles" mtimeNs must be decimal digits');
      }
    }
  },
  'migration.files': (p) => nonEmpty(p, 'migration'),
  'migration.result': (p) => nonEmpty(p, 'migration'),
  'migration.go': (p) => nonEmpty(p, 'migration'),
  'migration.abort': (p) => nonEmpty(p, 'migration'),
};

/** Every method, at run time (documentation checks); CHECKERS is complete by construction. */
export const METHODS: readonly Method[] = Object.keys(CHECKERS) as Method[];

export function isMethod(name: unknown): name is Method {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(CHECKERS, name);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Checks the envelope of a client message. Throws `bad_frame` for anything that is not a hello or
 * a request; the caller treats that as fatal for the connection.
 */
export function parseClientMessage(value: unknown): ClientMessage {
  if (!isRecord(value)) throw new VosError('bad_frame', 'a message must be a JSON object');
  if (value.t === 'hello') {
    if (typeof value.protocol !== 'number') throw new VosError('bad_frame', 'hello without a protocol version');
    return { t: 'hello', protocol: value.protocol, client: typeof value.client === 'string' ? value.client : '?' };
  }
  if (value.t === 'req') {
    if (typeof value.id !== 'number' || !Number.isSafeInteger(value.id)) {
      throw new VosError('bad_frame', 'a request needs a numeric "id"');
    }
    if (typeof value.method !== 'string') throw new VosError('bad_frame', 'a request needs a "method"');
    const params = value.params === undefined ? {} : value.params;
    // The method and params are checked per request (checkParams): a bad one fails that request
    // only, not the connection.
    return { t: 'req', id: value.id, method: value.method as Method, params: params as ParamsOf<Method> };
  }
  throw new VosError('bad_frame', 'unknown message type (expected "hello" or "req")');
}

/** Checks a request's method and parameters; throws `unknown_method` or `invalid_params`. */
export function checkParams<M extends Method>(method: M, params: unknown): ParamsOf<M> {
  if (!isMethod(method)) throw new VosError('unknown_method', `unknown method "${String(method)}"`);
  if (!isRecord(params)) fail('"params" must be an object');
  CHECKERS[method](params);
  return params as ParamsOf<M>;
}
