/**
 * The image format is written down once (docs/image-format.md) and written by one writer
 * (vos-init); the agent only reads it. These tests hold the three descriptions of it to each
 * other: the doc's record table, the C header's enum and the agent's reader; and they prove on
 * real checkpoints of a real pod that what the agent gives as SESSION comes back byte for byte,
 * and that the agent's walk over an image's records is C's (`vos-init verify --list`).
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import pty from '@lydell/node-pty';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageVersion } from '../../src-main/base/package-paths.js';
import { startCheckpointHelper, type CheckpointHelper } from '../../src-main/agent/runtime/checkpoint-helper.js';
import { MAX_RECORD, RECORD, RECORD_HEADER_BYTES, RECORD_MAGIC, readPayload, recordsOf } from '../../src-main/agent/runtime/image-records.js';
import { readSessionPayload, readSessionRecord, SessionRecordWatcher, type SessionRecord } from '../../src-main/agent/runtime/session-record.js';
import { ROOT, waitFor } from '../helpers/agent-process.js';
import { RUNTIME_DIR } from '../helpers/runtime-dir.js';

const INIT = join(RUNTIME_DIR, 'vos-init');
const LIB = join(RUNTIME_DIR, 'libvos.so');

/** name -> number, from the doc's "Record types" table. */
function docRecordTypes(): Record<string, number> {
  const doc = readFileSync(join(ROOT, 'docs', 'image-format.md'), 'utf8');
  const section = doc.split('## Record types')[1]!.split('\n## ')[0]!;
  const rows = [...section.matchAll(/^\| (\d+) \| ([A-Z_]+) \|/gm)];
  return Object.fromEntries(rows.map((m) => [m[2]!, Number(m[1])]));
}

const header = (): string => readFileSync(join(ROOT, 'src-main', 'runtime', 'include', 'vos-image.h'), 'utf8');

/** name -> number, from the C enum vos_rec_type. */
function cRecordTypes(): Record<string, number> {
  const body = /enum vos_rec_type \{([^}]*)\}/.exec(header())![1]!;
  return Object.fromEntries([...body.matchAll(/VOS_REC_(\w+) = (\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
}

function cDefine(name: string): string {
  return new RegExp(`#define ${name} (.*?)(?:\\s*/\\*.*)?$`, 'm').exec(header())![1]!.trim();
}

describe('the image format is described once', () => {
  it("the doc's record table, the C enum and the agent's reader name the same record types", () => {
    const doc = docRecordTypes();
    expect(Object.keys(doc).length).toBeGreaterThanOrEqual(11);
    expect(cRecordTypes()).toEqual(doc);
    expect({ ...RECORD }).toEqual(doc);
  });

  it("the agent's framing constants are the C header's", () => {
    expect(RECORD_MAGIC).toBe(Number(cDefine('VOS_REC_MAGIC').replace(/u$/, '')));
    expect(RECORD_HEADER_BYTES).toBe(Number(cDefine('VOS_REC_HEADER_SIZE')));
    const max = /^\((\d+)u << (\d+)\)$/.exec(cDefine('VOS_MAX_RECORD'))!;
    expect(MAX_RECORD).toBe(Number(max[1]) * 2 ** Number(max[2]));
  });
});

describe('vos-init writes every record; the agent reads them back', () => {
  let dir: string;
  let term: pty.IPty;
  let output = '';
  const control = (): string => join(dir, 'pod.sock');
  const ticks = (): number => (output.match(/tick/g) ?? []).length;

  beforeAll(async () => {
    dir = mkdtempSync('/tmp/vos-imagefmt-');
    term = pty.spawn(INIT, ['launch', '--control', control(), '--runtime', LIB, '--', 'sh', '-c', 'while :; do echo tick; sleep 0.05; done'], {
      cols: 80,
      rows: 24,
      env: process.env as Record<string, string>,
    });
    term.onData((d) => (output += d));
    await waitFor('the program to run', () => ticks() >= 2);
  });

  afterAll(() => {
    term?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  /** A SESSION content as the agent makes one, with a screen larger than any pipe buffer and
   * characters outside ASCII. */
  function sessionContent(tag: string): Buffer {
    const record: SessionRecord = {
      version: 1,
      name: `fmt ${tag} — ünïcödé ✓`,
      command: 'sh',
      args: ['-c', 'tick'],
      cwd: '/tmp',
      cols: 80,
      rows: 24,
      snapshot: `\u001b[1mscreen\u001b[0m ${'x'.repeat(300_000)} 日本語\r\n`,
      startedAt: 1,
      checkpointedAt: 2,
      agent: 'test',
      hostname: 'here',
    };
    return Buffer.from(JSON.stringify(record), 'utf8');
  }

  /** C's list of an image's records: [offset, length, type] each, and whether it verifies. */
  function cList(file: string): { records: number[][]; status: number | null; stderr: string } {
    const r = spawnSync(INIT, ['verify', '--list', file], { encoding: 'utf8' });
    const records = r.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((line) => line.split(' ').slice(0, 3).map(Number));
    return { records, status: r.status, stderr: r.stderr };
  }

  function tsList(file: string): number[][] {
    const fd = openSync(file, 'r');
    try {
      return [...recordsOf(fd)].map((r) => [r.offset, r.length, r.type]);
    } finally {
      closeSync(fd);
    }
  }

  /** `content`: the agent's SESSION content, after its "cut" (at once), or null: no "cut" ever. */
  async function checkpointToFile(file: string, content: (() => Promise<Buffer>) | null): Promise<{ helper: CheckpointHelper; fd: number }> {
    const fd = openSync(file, 'w', 0o600);
    const helper = startCheckpointHelper(INIT, ['--control', control()], {
      image: fd,
      sessionContent: content ? async () => ({ content: content() }) : () => new Promise(() => {}),
    });
    return { helper, fd };
  }

  it("a checkpoint into a file: SESSION is the agent's content byte for byte; the agent's walk is C's", async () => {
    const file = join(dir, 'plain.img');
    const content = sessionContent('plain');
    const { helper, fd } = await checkpointToFile(file, async () => content);
    let fields;
    try {
      fields = await helper.done;
    } finally {
      closeSync(fd);
    }
    // The counts the agent reports, and none of the image's bookkeeping.
    expect(Number(fields.bytes)).toBe(statSync(file).size);
    expect(Number(fields.processes)).toBeGreaterThanOrEqual(1);
    expect(fields).not.toHaveProperty('records');
    expect(fields).not.toHaveProperty('chain');

    expect(readSessionPayload(file)!.equals(content)).toBe(true);
    expect(readSessionRecord(file)).toEqual(JSON.parse(content.toString('utf8')));

    const c = cList(file);
    expect(c.status, c.stderr).toBe(0);
    const ts = tsList(file);
    expect(ts).toEqual(c.records);
    const types = ts.map((r) => r[2]);
    expect(types[0]).toBe(RECORD.HEADER);
    expect(types.slice(-2)).toEqual([RECORD.SESSION, RECORD.TRAILER]);
    expect(types.filter((t) => t === RECORD.SESSION)).toHaveLength(1);

    // HEADER names the agent's vOS as its producer.
    const fdr = openSync(file, 'r');
    try {
      const head = readPayload(fdr, [...recordsOf(fdr)][0]!)!;
      expect(head.subarray(0, 9).toString('latin1')).toBe('vOS image');
      const producerLength = head.readUInt32LE(32);
      expect(head.subarray(36, 36 + producerLength).toString('utf8')).toBe(`vOS ${packageVersion()}`);
    } finally {
      closeSync(fdr);
    }

    // The pod runs on.
    const before = ticks();
    await waitFor('the program to tick again', () => ticks() > before + 2);
  }, 30_000);

  it('a held checkpoint into a stream: HEADER, the pod records, SESSION, TRAILER, and the end of the stream before "held"', async () => {
    const content = sessionContent('held');
    const helper = startCheckpointHelper(INIT, ['--control', control()], { image: 'pipe', hold: true, sessionContent: async () => ({ content: Promise.resolve(content) }) });
    const chunks: Buffer[] = [];
    let found: SessionRecord | null = null;
    const watcher = new SessionRecordWatcher((r) => (found = r));
    const stream = helper.image as Readable;
    const ended = new Promise<void>((resolve) => stream.once('end', resolve));
    stream.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      watcher.push(chunk);
    });
    const held = await helper.held;
    await ended;
    const image = Buffer.concat(chunks);
    expect(image.length).toBe(Number(held.bytes));
    expect(held).not.toHaveProperty('chain');
    const file = join(dir, 'held.img');
    writeFileSync(file, image);
    expect(readSessionPayload(file)!.equals(content)).toBe(true);
    expect(found).toEqual(JSON.parse(content.toString('utf8')));
    const c = cList(file);
    expect(c.status, c.stderr).toBe(0);
    expect(tsList(file)).toEqual(c.records);
    expect(c.records.slice(-2).map((r) => r[2])).toEqual([RECORD.SESSION, RECORD.TRAILER]);

    // Let it go: the pod runs again where it was.
    helper.verdict(false);
    expect((await helper.done).stopped).toBe('0');
    const before = ticks();
    await waitFor('the program to tick again', () => ticks() > before + 2);
  }, 30_000);

  it('an agent that gives no SESSION calls the checkpoint off, with the reason, and the pod runs on', async () => {
    const file = join(dir, 'none.img');
    // No "cut": the pod does not stay frozen waiting. A "cut" and then no content: no image.
    for (const content of [null, () => new Promise<Buffer>(() => {})]) {
      const quiet = await checkpointToFile(file, content);
      try {
        await expect(quiet.helper.done).rejects.toThrow(/did not give the session record within 2 s/);
      } finally {
        closeSync(quiet.fd);
      }
      expect(cList(file).status).not.toBe(0); // no trailer: never a restorable-looking image
    }

    const failing = await checkpointToFile(file, () => Promise.reject(new Error('no screen here')));
    try {
      await expect(failing.helper.done).rejects.toThrow(/no screen here/);
    } finally {
      closeSync(failing.fd);
    }
    const before = ticks();
    await waitFor('the program to tick again', () => ticks() > before + 2);
  }, 30_000);
});
