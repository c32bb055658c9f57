/**
 * Files a paired machine sends along with a move land here only as this machine allows: at an
 * absolute normalized path, not through a symbolic link, without setuid/setgid/sticky bits, no
 * bigger than announced and than this machine's own limits; and a refusal for a file that is
 * here with other content does not tell its size.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FileNeed } from '../../src-main/api/protocol.js';
import { IncomingFiles, checkIncomingPath } from '../../src-main/agent/migration/incoming-files.js';
import { markAsIs, missingHere, refusalDetails, takenAsIsNote } from '../../src-main/agent/migration/preflight.js';
import { VosError, type ErrorPayload } from '../../src-main/api/errors.js';

let dir: string;
beforeEach(() => void (dir = mkdtempSync(join(tmpdir(), 'vos-incoming-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function need(path: string, content: Buffer, mode = 0o644): FileNeed {
  return { path, size: content.length, hash: createHash('sha256').update(content).digest('hex'), mode };
}

/** Sends `content` for `f` (announced as `f`) and waits for the verdict. */
async function send(f: FileNeed, content: Buffer): Promise<void> {
  const files = new IncomingFiles('m1', [f]);
  expect(files.accept(f.path, Readable.from([content]))).toBe(true);
  await files.all();
}

describe('paths a peer names', () => {
  it('are taken only absolute and normalized', () => {
    for (const ok of ['/tmp/a', '/home/u/notes.txt', '/a b/c']) expect(checkIncomingPath(ok), ok).toBeNull();
    for (const bad of ['tmp/a', '/tmp/../etc/passwd', '/tmp//a', '/tmp/./a', '/tmp/a\0b', '/tmp/a/', '/', '', `/${'a'.repeat(5000)}`]) {
      expect(checkIncomingPath(bad), JSON.stringify(bad.slice(0, 30))).not.toBeNull();
    }
    expect(checkIncomingPath('/', 'dir')).toBeNull();
    expect(checkIncomingPath('/tmp/../x', 'dir')).not.toBeNull();
  });

  it('a file is not put through a symbolic link in its directory', async () => {
    mkdirSync(join(dir, 'real'));
    symlinkSync(join(dir, 'real'), join(dir, 'link'));
    const content = Buffer.from('planted\n');
    await expect(send(need(join(dir, 'link', 'f'), content), content)).rejects.toThrow(/symbolic link/);
    expect(readdirSync(join(dir, 'real'))).toEqual([]);
  });

  it('a path not in normal form is refused when it lands too', async () => {
    mkdirSync(join(dir, 'sub'));
    const content = Buffer.from('x');
    await expect(send(need(`${dir}/sub/../f`, content), content)).rejects.toThrow(/normal form/);
    expect(existsSync(join(dir, 'f'))).toBe(false);
  });
});

describe('a file sent along', () => {
  it('lands without setuid, setgid or sticky bits', async () => {
    const content = Buffer.from('#!/bin/sh\n');
    const path = join(dir, 'tool');
    await send(need(path, content, 0o7755), content);
    expect(statSync(path).mode & 0o7777).toBe(0o755);
  });

  it('may not bring more than it announced: refused, nothing left', async () => {
    const announced = Buffer.from('tiny');
    const path = join(dir, 'big');
    await expect(send(need(path, announced), Buffer.alloc(1024 * 1024, 1))).rejects.toThrow(/more than the 4 bytes announced/);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('what this machine asks to be sent along', () => {
  it('keeps to its own limits, whatever the source offers', async () => {
    const f = (name: string, size: number): FileNeed => ({ path: join(dir, name), size, hash: 'h', mode: 0o644 });
    const limits = { fileBytes: 100, totalBytes: 150 };
    const { problems, wanted } = await missingHere([], [f('a', 80), f('b', 200), f('c', 80)], 1_000_000, limits);
    expect(wanted.map((w) => w.path)).toEqual([join(dir, 'a')]);
    expect(problems).toEqual([
      expect.stringMatching(/b does not exist here \(200 bytes: more than the 100 bytes this machine accepts sent along\)/),
      expect.stringMatching(/c does not exist here, and with it the files to send along would be more than the 150 bytes/),
    ]);
  });

  it('says only that a file here differs, not its size or content', async () => {
    const path = join(dir, 'key.pem');
    writeFileSync(path, 'a secret of 27 bytes here..');
    const other = Buffer.from('something else');
    const { problems } = await missingHere([], [need(path, other)], 1_000_000);
    expect(problems).toEqual([`${path} differs here (other content; to let the session use it as it is, ask again with --take-as-is ${path})`]);
    expect(problems[0]).not.toMatch(/27/);
  });

  it('a refusal that only differing files stand in the way of names them for "move anyway"; a peer\'s list is checked', async () => {
    const path = join(dir, 'history');
    writeFileSync(path, 'this machine was here\n');
    const checked = await missingHere([], [need(path, Buffer.from('the session was here\n'))], 1_000_000);
    expect(refusalDetails(checked)).toEqual({ takeAsIs: [path] });
    // With anything else in the way, taking the file as it is would not do: nothing is offered.
    const more = await missingHere([join(dir, 'no-such-dir')], [need(path, Buffer.from('x'))], 1_000_000);
    expect(more.problems).toHaveLength(2);
    expect(refusalDetails(more)).toEqual({});
    // Across the API and from peers: a list of absolute paths, or nothing.
    const back = VosError.fromPayload(new VosError('refused', 'no', refusalDetails(checked)).toPayload());
    expect(back.details.takeAsIs).toEqual([path]);
    const hostile = (takeAsIs: unknown): string[] | undefined =>
      VosError.fromPayload({ code: 'refused', message: 'no', takeAsIs } as unknown as ErrorPayload).details.takeAsIs;
    expect(hostile(['relative/path'])).toBeUndefined();
    expect(hostile(['/ok', 7])).toBeUndefined();
    expect(hostile(['/with\nnewline'])).toBeUndefined();
    expect(hostile(Array.from({ length: 65 }, (_, i) => `/f${i}`))).toBeUndefined();
    expect(hostile('/not-a-list')).toBeUndefined();
    expect(hostile([`/${'a'.repeat(5000)}`])).toBeUndefined();
  });

  it('takes a file the session only appends to as it is here, whatever its content, and lists it', async () => {
    const log = join(dir, 'history');
    writeFileSync(log, 'this machine\'s own history\n');
    const theirs = Buffer.from('the other machine\'s history\n');
    const same = join(dir, 'same');
    writeFileSync(same, 'same');
    const r = await missingHere([], [{ ...need(log, theirs), appendOnly: true }, { ...need(same, Buffer.from('same')), appendOnly: true }], 1_000_000);
    expect(r).toEqual({ problems: [], wanted: [], takenAsIs: [log], askedAsIs: [], differing: [] });
  });

  it('takes a file the user named (take as is) as it is here, and says so apart from the appended ones', async () => {
    const history = join(dir, 'repl_history');
    writeFileSync(history, 'this machine\'s own history\n');
    const log = join(dir, 'log');
    writeFileSync(log, 'here\n');
    const needs = [need(history, Buffer.from('the other history\n')), { ...need(log, Buffer.from('there\n')), appendOnly: true }];
    // Not named: refused, naming the way to ask.
    expect((await missingHere([], needs, 1_000_000)).problems).toEqual([expect.stringContaining(`--take-as-is ${history}`)]);
    const r = await missingHere([], markAsIs(needs, [history]), 1_000_000);
    expect(r).toEqual({ problems: [], wanted: [], takenAsIs: [log], askedAsIs: [history], differing: [] });
    expect(takenAsIsNote(r.takenAsIs, r.askedAsIs)).toBe(
      `${log}: other content than at the checkpoint; the session only appends to it, so it goes on appending to it as it is here; ` +
        `${history}: other content than at the checkpoint; the session uses it as it is here, as asked (take as is)`,
    );
    // A path the session does not have open is a mistake, said, not ignored.
    expect(() => markAsIs(needs, [join(dir, 'typo')])).toThrow(/typo: not a file the session has open/);
    // A file missing here is still sent along or refused as before: take as is is about other content only.
    const gone = join(dir, 'gone');
    expect((await missingHere([], markAsIs([need(gone, Buffer.from('x'))], [gone]), 1_000_000)).wanted.map((f) => f.path)).toEqual([gone]);
  });
});

describe('an offer', () => {
  it('naming a path not in normal form is refused before anything is looked at', async () => {
    const { MigrationReceiver } = await import('../../src-main/agent/migration/receiver.js');
    const { runtimeFiles } = await import('../../src-main/agent/runtime/native.js');
    if (!runtimeFiles()) return; // the offer is refused earlier without the runtime
    const receiver = new MigrationReceiver({} as never, () => {});
    const offer = (files: FileNeed[], dirs: string[] = ['/']) => ({
      name: 's', command: 'sh', args: [], cwd: '/', cols: 80, rows: 24, dirs, files, bytes: 0, arch: process.arch, sendUpTo: 1000,
    });
    const f = (path: string): FileNeed => ({ path, size: 1, hash: 'h', mode: 0o644 });
    await expect(receiver.offer({ id: 'p', name: 'peer' }, offer([f(`${dir}/../etc/x`)]))).rejects.toThrow(/a path this machine does not take: .*normal form/);
    await expect(receiver.offer({ id: 'p', name: 'peer' }, offer([], ['relative']))).rejects.toThrow(/not absolute/);
  });
});
