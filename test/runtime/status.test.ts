/**
 * Errors travel from vos-init to the agent as structured values: the runtime's status encoder
 * (common/status.c) keeps any string valid JSON within its bound, the agent's decoder
 * (status-line.ts) takes nothing on trust, and a failed restore or checkpoint reaches a client
 * with its code, file and record — never with words read off the session's screen.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src-main/api/client.js';
import { VosError } from '../../src-main/api/errors.js';
import { errorFromStatus, replyError, restoreOutcome } from '../../src-main/agent/runtime/status-line.js';
import { ROOT, startDaemon, waitFor, type DaemonHandle } from '../helpers/agent-process.js';
import { RUNTIME_DIR, TOOL_CFLAGS } from '../helpers/runtime-dir.js';
import { fillTestPrograms } from '../helpers/test-programs.js';

const NUL = Buffer.from([0]);

describe('the runtime status encoder (common/status.c)', () => {
  let dir: string;
  let tool: string;
  beforeAll(() => {
    dir = mkdtempSync('/tmp/vos-status-');
    tool = join(dir, 'status-json');
    const common = join(ROOT, 'src-main', 'runtime', 'common');
    execFileSync('gcc', [...TOOL_CFLAGS, '-std=c11', '-D_GNU_SOURCE', '-O2', '-Wall', '-Wextra', '-Werror', '-I', common, '-I', join(ROOT, 'src-main', 'runtime', 'include'),
      '-o', tool, join(ROOT, 'test', 'runtime', 'native', 'status-json.c'), join(common, 'status.c'), join(common, 'util.c')]);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** The encoder's line for these fields (raw bytes), in a buffer of `size` bytes. */
  const encode = (fields: { code?: Buffer | string; message: Buffer | string; path?: Buffer | string; record?: Buffer | string }, size?: number): string => {
    const part = (v: Buffer | string | undefined): Buffer => (typeof v === 'string' ? Buffer.from(v) : (v ?? Buffer.alloc(0)));
    const input = Buffer.concat([part(fields.code), NUL, part(fields.message), NUL, part(fields.path), NUL, part(fields.record)]);
    const out = execFileSync(tool, size ? [String(size)] : [], { input }).toString('utf8');
    expect(out.endsWith('\n')).toBe(true);
    if (size) expect(Buffer.byteLength(out) - 1).toBeLessThan(size);
    return out.slice(0, -1);
  };

  it('keeps quotes, backslashes, control characters and any Unicode exactly', () => {
    const controls = Array.from({ length: 31 }, (_, i) => String.fromCharCode(i + 1)).join('') + '\x7f';
    const message = `he said "no" \\ back\\slash ${controls} é 漢字 🦀 \u2028 end`;
    const path = '/tmp/a "dir"/with\nnewline\ttab';
    const line = encode({ code: 'bad_image', message, path, record: 'PROCESS #3' });
    expect(line).not.toMatch(/[\x00-\x1f]/); // one line, no raw control characters
    expect(JSON.parse(line)).toEqual({ code: 'bad_image', message, path, record: 'PROCESS #3' });
  });

  it('leaves out what is not known and uses the default code', () => {
    expect(JSON.parse(encode({ message: 'plain' }))).toEqual({ code: 'restore_failed', message: 'plain' });
  });

  it.each([
    ['a lone byte 0xff', [0xff]],
    ['a continuation byte alone', [0x80]],
    ['an overlong slash', [0xc0, 0xaf]],
    ['a surrogate', [0xed, 0xa0, 0x80]],
    ['past U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
    ['a sequence cut at the end', [0xe2, 0x82]],
  ])('replaces invalid UTF-8 (%s) with U+FFFD', (_what, bytes) => {
    const message = Buffer.concat([Buffer.from('before '), Buffer.from(bytes), Buffer.from(' after')]);
    const parsed = JSON.parse(encode({ message })) as { message: string };
    expect(parsed.message.startsWith('before \ufffd')).toBe(true);
    expect(parsed.message.endsWith(bytes.length > 2 && bytes[0] !== 0xe2 ? ' after' : 'after')).toBe(true);
    expect(parsed.message.replace(/\ufffd/g, '')).toBe('before  after');
  });

  it.each([256, 300, 700, 4000])('stays within a %i-byte buffer: fields are cut between characters, the syntax never', (size) => {
    const message = '"\\é🦀\x01'.repeat(400); // every character needs escaping or several bytes
    const path = '/p/'.repeat(600);
    const line = encode({ code: 'bad_image', message, path, record: 'PAGES #12' }, size);
    const parsed = JSON.parse(line) as { code: string; message: string; path?: string; record?: string };
    expect(parsed.code).toBe('bad_image');
    // The runtime's messages are cut at 511 bytes, maybe inside a character: its bytes are U+FFFD each.
    expect(message.startsWith(parsed.message.replace(/\ufffd+$/, ''))).toBe(true);
    expect(parsed.message.length).toBeGreaterThan(0);
    if (parsed.path !== undefined) expect(path.startsWith(parsed.path)).toBe(true);
    expect(parsed.record).toBe('PAGES #12');
  });

  it('turns random bytes into valid JSON', () => {
    for (let i = 0; i < 40; i++) {
      const line = encode({ code: randomBytes(8), message: randomBytes(600), path: randomBytes(300), record: randomBytes(40) }, 256 + i * 50);
      const parsed = JSON.parse(line) as Record<string, unknown>;
      expect(typeof parsed.code).toBe('string');
      expect(typeof parsed.message).toBe('string');
    }
  });
});

describe('the agent status decoder (status-line.ts)', () => {
  it('decodes a failure with its details', () => {
    const e = errorFromStatus('{"code":"bad_image","message":"x is damaged","path":"/x","record":"PAGES #4"}', 'restore_failed');
    expect(e).toBeInstanceOf(VosError);
    expect(e.toPayload()).toEqual({ code: 'bad_image', message: 'x is damaged', path: '/x', record: 'PAGES #4' });
  });

  it.each([
    ['an empty line', '', 'no reason given'],
    ['plain words', 'the pod went away', 'the pod went away'],
    ['cut JSON', '{"code":"bad_image","mess', '{"code":"bad_image","mess'],
    ['an array', '[1,2]', '[1,2]'],
    ['a message that is not a string', '{"code":"bad_image","message":5}', '{"code":"bad_image","message":5}'],
  ])('takes %s as words, with the fallback code', (_what, text, message) => {
    const e = errorFromStatus(text, 'checkpoint_failed');
    expect(e.code).toBe('checkpoint_failed');
    expect(e.message).toBe(message);
    expect(e.details).toEqual({});
  });

  it('drops an unknown code and details that are not strings', () => {
    const e = errorFromStatus('{"code":"rm -rf","message":"m","path":7,"record":{"a":1}}', 'restore_failed');
    expect(e.toPayload()).toEqual({ code: 'restore_failed', message: 'm' });
  });

  it('bounds a long message', () => {
    const e = errorFromStatus(JSON.stringify({ code: 'timeout', message: 'x'.repeat(100_000) }), 'restore_failed');
    expect(e.code).toBe('timeout');
    expect(e.message.length).toBeLessThan(5000);
  });

  it('reads replies: "ok" is no error, "error {status}" and "error words" are', () => {
    expect(replyError('ok processes=1', 'checkpoint_failed')).toBeNull();
    expect(replyError('held restored=1', 'checkpoint_failed')).toBeNull();
    expect(replyError('error {"code":"unavailable","message":"no pods here"}', 'checkpoint_failed')?.toPayload()).toEqual({
      code: 'unavailable',
      message: 'no pods here',
    });
    expect(replyError('error it broke', 'checkpoint_failed')?.toPayload()).toEqual({ code: 'checkpoint_failed', message: 'it broke' });
  });

  it('reads a restore outcome, and refuses one it cannot read', () => {
    expect(restoreOutcome('{"ok":true,"held":true,"restored":3,"clocks":"jumped"}')).toEqual({ held: true, restored: 3, clocks: 'jumped', placed: 0, note: null });
    expect(restoreOutcome('{"ok":true,"held":true,"restored":1,"clocks":"same","placed":67108864}').placed).toBe(67108864);
    for (const bad of ['-1', '1.5', '"64"', '1e300']) expect(restoreOutcome(`{"ok":true,"restored":1,"placed":${bad}}`).placed).toBe(0);
    expect(restoreOutcome('{"ok":true,"held":false,"restored":1,"clocks":"same","note":"1 connection(s) waiting on /tmp/s were dropped"}').note).toBe('1 connection(s) waiting on /tmp/s were dropped');
    expect(restoreOutcome('{"ok":true,"restored":1,"note":7}').note).toBeNull();
    expect(() => restoreOutcome('{"code":"bad_image","message":"damaged","record":"POD #3"}')).toThrow(
      expect.objectContaining({ code: 'bad_image', details: { record: 'POD #3' } }),
    );
    for (const garbage of ['', 'ok restored=1', '{"ok":"yes"}', '{"ok":tru']) {
      expect(() => restoreOutcome(garbage)).toThrow(expect.objectContaining({ code: 'restore_failed', message: expect.stringMatching(/could not be read/) }));
    }
  });
});

const RECORD_KINDS: Record<number, string> = { 1: 'HEADER', 2: 'SESSION', 3: 'POD', 4: 'OBJECTS', 5: 'PROCESS', 6: 'PAGES', 7: 'OBJDATA', 8: 'FILE', 9: 'FILEDATA', 10: 'PRECOPY', 15: 'TRAILER' };

/** The records of an image: kind, place (from 1) and where the payload is. */
function records(image: Buffer): { kind: string; index: number; payload: number; length: number }[] {
  const out = [];
  for (let at = 0, index = 1; at + 24 <= image.length; index++) {
    const length = Number(image.readBigUInt64LE(at + 8));
    out.push({ kind: RECORD_KINDS[image.readUInt32LE(at + 4)] ?? '?', index, payload: at + 24, length });
    at += 24 + length + 4;
  }
  return out;
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('failures reach the agent as structured errors', () => {
  let programs: string;
  let agent: DaemonHandle;
  let client: ApiClient;
  beforeAll(async () => {
    programs = mkdtempSync('/tmp/vos-programs-');
    chmodSync(programs, 0o755);
    fillTestPrograms(programs);
    agent = await startDaemon();
    client = await agent.connect();
  });
  afterAll(async () => {
    await agent?.stop();
    rmSync(programs, { recursive: true, force: true });
  });

  const ended = (id: string): Promise<unknown> =>
    waitFor(`session ${id} to end`, async () => (await client.request('session.list', {})).find((s) => s.id === id)?.state === 'exited');
  const failure = async (p: Promise<unknown>): Promise<VosError> => {
    const e = await p.then(() => null, (err: unknown) => err);
    expect(e).toBeInstanceOf(VosError);
    return e as VosError;
  };

  /** A counter started in `cwd`, checkpointed with --stop into `file`; its screen shows `banner`. */
  async function stoppedCounter(cwd: string, file: string, banner: string): Promise<void> {
    const s = await client.request('session.create', {
      command: 'bash',
      args: ['-c', `echo '${banner}'; exec ${join(programs, 'counter')} 50`],
      cwd,
      cols: 100,
      rows: 30,
    });
    await client.request('session.wait', { id: s.id, pattern: 'count=2$', timeoutMs: 10_000 });
    await client.request('session.checkpoint', { id: s.id, out: file, stop: true });
    await ended(s.id);
  }

  let good: string | null = null;
  /** An image of a counter, made once. */
  async function goodImage(): Promise<string> {
    if (!good) {
      const file = join(agent.home, 'good.vosimg');
      await stoppedCounter(agent.home, file, 'counting');
      good = file;
    }
    return good;
  }

  it('a damaged image: bad_image, naming the record', async () => {
    const file = await goodImage();
    const bytes = readFileSync(file);
    const pages = records(bytes).find((r) => r.kind === 'PAGES' && r.length > 64)!;
    expect(pages).toBeDefined();
    bytes[pages.payload + Math.floor(pages.length / 2)] ^= 0x40;
    const damaged = join(agent.home, 'damaged.vosimg');
    writeFileSync(damaged, bytes);
    const before = (await client.request('session.list', {})).length;
    const e = await failure(client.request('session.restore', { file: damaged }));
    expect(e.code).toBe('bad_image');
    expect(e.details.record).toBe(`PAGES #${pages.index}`);
    expect(e.message).toBe(`cannot restore ${damaged}: ${damaged} is damaged: the pages record at byte ${pages.payload - 24} fails its checksum`);
    expect((await client.request('session.list', {})).length).toBe(before);
  });

  it('a missing working directory: the path, and the restorer words only (not what the screen shows)', async () => {
    const cwd = join(agent.home, 'gone-later');
    mkdirSync(cwd);
    const file = join(agent.home, 'cwd.vosimg');
    // The saved screen carries the words the agent once searched the screen for.
    await stoppedCounter(cwd, file, 'vos: restore failed: impostor words on the screen');
    rmdirSync(cwd);
    const e = await failure(client.request('session.restore', { file }));
    expect(e.code).toBe('restore_failed');
    expect(e.details.path).toBe(cwd);
    expect(e.message).toMatch(
      new RegExp(`^cannot restore ${escape(file)}: process \\d+ \\(counter\\): its working directory ${escape(cwd)} is missing here: No such file or directory$`),
    );
  });

  it('a restorer that dies without a word: its exit, not its screen', async () => {
    const file = await goodImage();
    // A restorer that ends before it connects (killed, crashed, an older vos-init): a runtime
    // whose vos-init prints the words the agent once searched the screen for, and exits.
    const fake = mkdtempSync('/tmp/vos-fake-runtime-');
    try {
      // Only the restorer is fake: the session's terminal host is the real one.
      const real = join(RUNTIME_DIR, 'vos-init');
      writeFileSync(
        join(fake, 'vos-init'),
        `#!/bin/sh\n[ "$1" = restore ] || exec ${real} "$@"\necho "vos: restore failed: screen words"\nexit 3\n`,
        { mode: 0o755 },
      );
      writeFileSync(join(fake, 'libvos.so'), '');
      const other = await startDaemon({ env: { VOS_RUNTIME_DIR: fake } });
      try {
        const c = await other.connect();
        const e = await failure(c.request('session.restore', { file }));
        expect(e.code).toBe('restore_failed');
        expect(e.message).toBe(`cannot restore ${file}: the restorer ended without saying why (exit status 3)`);
        c.close();
      } finally {
        await other.stop();
      }
    } finally {
      rmSync(fake, { recursive: true, force: true });
    }
  });

  it('a checkpoint failure: its code and words decoded, not the JSON', async () => {
    const s = await client.request('session.create', {
      command: 'bash',
      args: ['-c', `perl -e 'msgget(0, 0600) // die; sleep 1000' & exec ${join(programs, 'counter')} 50`],
      cwd: agent.home,
    });
    await client.request('session.wait', { id: s.id, pattern: 'count=2$', timeoutMs: 10_000 });
    const out = join(agent.home, 'refused.vosimg');
    const e = await failure(client.request('session.checkpoint', { id: s.id, out }));
    expect(e.code).toBe('unsupported'); // trying again will not help: a schedule pauses on it
    expect(e.message).toMatch(/^the pod has a SysV message queue \(key 0, id \d+\)/);
    // A pod whose control socket is gone: the helper says so with its own code.
    unlinkSync(join(agent.home, 'pods', `${s.id}.sock`));
    const gone = await failure(client.request('session.checkpoint', { id: s.id, out }));
    expect(gone.code).toBe('session_exited');
    expect(gone.message).toMatch(/^cannot reach the session's pod at .*: No such file or directory$/);
    await client.request('session.kill', { id: s.id, signal: 'KILL' });
    await ended(s.id);
  });
});
