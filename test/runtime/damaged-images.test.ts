/**
 * Images damaged in ways the checksums do not catch (issue 15, item 6): each is a real image of
 * a tiny program with one record rewritten and its CRCs and the trailer's chain made right again
 * (test/helpers/image-edit.ts). `vos-init verify` and a restore must refuse each with bad_image
 * naming the record, within bounded memory (verify runs under an address-space limit that the
 * allocations these images once caused would not fit in), and without a crash; a SESSION record
 * with an absurd terminal size leaves the agent alive and small.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../src-main/api/client.js';
import { VosError } from '../../src-main/api/errors.js';
import { RECORD } from '../../src-main/agent/runtime/image-records.js';
import { joinImage, recordIndex, splitImage, withPayload, type ImageRecord } from '../helpers/image-edit.js';
import { startDaemon, waitFor, type DaemonHandle } from '../helpers/agent-process.js';
import { RUNTIME_DIR, SANITIZE } from '../helpers/runtime-dir.js';
import { fillTestPrograms } from '../helpers/test-programs.js';

const INIT = join(RUNTIME_DIR, 'vos-init');
/** Address space for `vos-init verify`: the program, its libc, a 64 MiB record and its budget. */
const VERIFY_AS_LIMIT = 1024 * 1024 * 1024;

/** A PAGES payload: its owner, then runs (each a header and, for data runs, its bytes). */
function pagesPayload(head: Buffer, runs: { addr: bigint; npages: number; kind: number; data?: Buffer }[]): Buffer {
  const parts = [head.subarray(0, 8)];
  for (const r of runs) {
    const h = Buffer.alloc(16);
    h.writeBigUInt64LE(r.addr, 0);
    h.writeUInt32LE(r.npages, 8);
    h.writeUInt32LE(r.kind, 12);
    parts.push(h, r.data ?? Buffer.alloc(0));
  }
  return Buffer.concat(parts);
}

/** An OBJECTS payload of n objects as small as the format allows (/dev/null, no path, no epoll). */
function manyObjects(n: number): Buffer {
  const each = 64;
  const b = Buffer.alloc(4 + n * each);
  b.writeUInt32LE(n, 0);
  for (let i = 0; i < n; i++) {
    b.writeUInt32LE(i, 4 + i * each);
    b.writeUInt32LE(3, 8 + i * each); // a device
  }
  return b;
}

/** One object of an OBJECTS payload (u32 id, kind, flags, i32 owner, u64 pos, u64 p[4], str path, no epoll). */
function objectBytes(id: number, kind: number, p: bigint[], path: string): Buffer {
  const name = Buffer.from(path);
  const b = Buffer.alloc(56 + 4 + name.length + 4);
  b.writeUInt32LE(id, 0);
  b.writeUInt32LE(kind, 4);
  p.forEach((v, i) => b.writeBigUInt64LE(v, 24 + i * 8));
  b.writeUInt32LE(name.length, 56);
  name.copy(b, 60);
  return b;
}

/** OBJECTS with two more objects: the two ends (ids 900001, 900002) of a TCP connection inside the
 * pod (kind 18) on 127.0.0.1, ports 5000 and 40000; `change` may spoil the second end. */
function withTcpPair(records: ImageRecord[], change: (end: { kind: number; p: bigint[]; path: string }) => void = () => {}): ImageRecord[] {
  return withPayload(records, RECORD.OBJECTS, (old) => {
    const n = old.readUInt32LE(0);
    const a = { kind: 18, p: [900002n, 2n, 5000n | (40000n << 16n), 0n], path: '127.0.0.1 127.0.0.1' };
    const b = { kind: 18, p: [900001n, 2n, 40000n | (5000n << 16n), 2n], path: '127.0.0.1 127.0.0.1' };
    change(b);
    const head = Buffer.alloc(4);
    head.writeUInt32LE(n + 2, 0);
    return Buffer.concat([head, old.subarray(4), objectBytes(900001, a.kind, a.p, a.path), objectBytes(900002, b.kind, b.p, b.path)]);
  });
}

interface Damage {
  what: string;
  /** The damaged image's records, and the record a refusal must name ("POD #4"). */
  make(records: ImageRecord[]): { records: ImageRecord[]; record: string };
}

const firstPages = (records: ImageRecord[]): ImageRecord => records.find((r) => r.type === RECORD.PAGES && r.payload.length > 24)!;

const DAMAGES: Damage[] = [
  {
    what: 'a TCP connection end (kind 18) whose other end is a device',
    make: (records) => ({
      records: withTcpPair(records, (b) => (b.kind = 3)),
      record: `OBJECTS #${recordIndex(records, RECORD.OBJECTS)}`,
    }),
  },
  {
    what: 'a TCP connection end (kind 18) whose path is one address',
    make: (records) => ({
      records: withTcpPair(records, (b) => (b.path = '127.0.0.1')),
      record: `OBJECTS #${recordIndex(records, RECORD.OBJECTS)}`,
    }),
  },
  {
    what: 'a TCP connection end (kind 18) with an IPv6 address in an IPv4 one and a flag that does not exist',
    make: (records) => ({
      records: withTcpPair(records, (b) => ((b.path = '::1 127.0.0.1'), (b.p[3] = 1n << 40n))),
      record: `OBJECTS #${recordIndex(records, RECORD.OBJECTS)}`,
    }),
  },
  {
    what: 'a FILE record with id 2^20',
    make: (records) => ({
      records: withPayload(records, RECORD.FILE, (p) => (p.writeUInt32LE(1 << 20, 0), p)),
      record: `FILE #${recordIndex(records, RECORD.FILE)}`,
    }),
  },
  {
    what: 'a FILEREF (content in the parent image) in a whole image',
    make: (records) => {
      const file = records.filter((r) => r.type === RECORD.FILE).pop()!;
      const id = file.payload.readUInt32LE(0);
      const out = records
        .filter((r) => !(r.type === RECORD.FILEDATA && r.payload.readUInt32LE(0) === id))
        .map((r) => (r === file ? { type: RECORD.FILEREF, payload: r.payload } : r));
      return { records: out, record: `FILEREF #${recordIndex(out, RECORD.FILEREF)}` };
    },
  },
  {
    what: 'a 64 MiB OBJECTS record of a million objects',
    make: (records) => ({
      records: withPayload(records, RECORD.OBJECTS, () => manyObjects(1_000_000)),
      record: `OBJECTS #${recordIndex(records, RECORD.OBJECTS)}`,
    }),
  },
  {
    what: 'a FILEDATA record shorter than its 16-byte head',
    make: (records) => ({
      records: withPayload(records, RECORD.FILEDATA, (p) => p.subarray(0, 8)),
      record: `FILEDATA #${recordIndex(records, RECORD.FILEDATA)}`,
    }),
  },
  {
    what: 'a second POD record',
    make: (records) => {
      const at = recordIndex(records, RECORD.POD);
      return { records: [...records.slice(0, at), records[at - 1]!, ...records.slice(at)], record: `POD #${at + 1}` };
    },
  },
  {
    what: 'a second OBJECTS record',
    make: (records) => {
      const at = recordIndex(records, RECORD.OBJECTS);
      return { records: [...records.slice(0, at), records[at - 1]!, ...records.slice(at)], record: `OBJECTS #${at + 1}` };
    },
  },
  {
    what: 'a PROCESS record before POD (out of the documented order)',
    make: (records) => {
      const at = recordIndex(records, RECORD.PROCESS) - 1;
      const pod = recordIndex(records, RECORD.POD) - 1;
      const moved = [...records.slice(0, pod), records[at]!, ...records.slice(pod, at), ...records.slice(at + 1)];
      return { records: moved, record: `PROCESS #${pod + 1}` };
    },
  },
  {
    what: 'a run of zero pages that starts in an area and runs 4 GiB past it',
    make: (records) => {
      const pages = firstPages(records);
      const nth = records.filter((r) => r.type === RECORD.PAGES).indexOf(pages);
      const addr = pages.payload.readBigUInt64LE(8);
      return {
        records: withPayload(records, RECORD.PAGES, (p) => pagesPayload(p, [{ addr, npages: 1 << 20, kind: 1 }]), nth),
        record: `PAGES #${recordIndex(records, RECORD.PAGES, nth)}`,
      };
    },
  },
  {
    what: 'a run of data pages longer than its record',
    make: (records) => {
      const pages = firstPages(records);
      const nth = records.filter((r) => r.type === RECORD.PAGES).indexOf(pages);
      const addr = pages.payload.readBigUInt64LE(8);
      return {
        records: withPayload(records, RECORD.PAGES, (p) => pagesPayload(p, [{ addr, npages: 64, kind: 0, data: Buffer.alloc(4096) }]), nth),
        record: `PAGES #${recordIndex(records, RECORD.PAGES, nth)}`,
      };
    },
  },
];

describe('images damaged past their checksums are refused, naming the record', () => {
  let programs: string;
  let agent: DaemonHandle;
  let client: ApiClient;
  let good: Buffer;

  beforeAll(async () => {
    programs = mkdtempSync('/tmp/vos-programs-');
    chmodSync(programs, 0o755);
    fillTestPrograms(programs);
    agent = await startDaemon();
    client = await agent.connect();
    const s = await client.request('session.create', { command: join(programs, 'counter'), args: ['50'], cwd: agent.home, cols: 80, rows: 24 });
    await client.request('session.wait', { id: s.id, pattern: 'count=2$', timeoutMs: 10_000 });
    const file = join(agent.home, 'good.vosimg');
    await client.request('session.checkpoint', { id: s.id, out: file, stop: true });
    good = readFileSync(file);
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    rmSync(programs, { recursive: true, force: true });
  });

  const failure = async (p: Promise<unknown>): Promise<VosError> => {
    const e = await p.then(
      () => null,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(VosError);
    return e as VosError;
  };

  const verify = (file: string): { status: number | null; signal: string | null; stderr: string } => {
    // Under AddressSanitizer (npm run test:sanitize) no address-space limit: its shadow memory
    // alone reserves terabytes. scripts/test-sanitize.sh caps each allocation at 1 GiB instead.
    const limit = SANITIZE ? [] : ['prlimit', `--as=${VERIFY_AS_LIMIT}`];
    const [cmd, ...args] = [...limit, INIT, 'verify', file];
    const r = spawnSync(cmd!, args, { encoding: 'utf8', timeout: 60_000 });
    return { status: r.status, signal: r.signal, stderr: r.stderr };
  };

  it('the helper rebuilds the real image byte for byte, and the image verifies', () => {
    expect(joinImage(splitImage(good)).equals(good)).toBe(true);
    const file = join(agent.home, 'rebuilt.vosimg');
    writeFileSync(file, joinImage(splitImage(good)));
    const r = verify(file);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('a well-formed TCP connection inside the pod (kind 18) added to it verifies (the checks above refuse only the damage)', () => {
    const file = join(agent.home, 'tcp-pair.vosimg');
    writeFileSync(file, joinImage(withTcpPair(splitImage(good))));
    const r = verify(file);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  for (const damage of DAMAGES) {
    it(`${damage.what}: vos-init verify and a restore refuse it`, async () => {
      const { records, record } = damage.make(splitImage(good));
      const file = join(agent.home, 'damaged.vosimg');
      writeFileSync(file, joinImage(records));

      const r = verify(file);
      expect(r.signal, r.stderr).toBeNull();
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`damaged.*\\(record ${record}\\)\\n$`));

      const before = (await client.request('session.list', {})).length;
      const e = await failure(client.request('session.restore', { file }));
      expect(e.code, e.message).toBe('bad_image');
      expect(e.details.record).toBe(record);
      expect((await client.request('session.list', {})).length).toBe(before);
    });
  }

  it('a SESSION record with a terminal of 100000 x 100000: refused, and the agent stays alive and small', async () => {
    const records = withPayload(splitImage(good), RECORD.SESSION, (p) => {
      const session = JSON.parse(p.toString('utf8')) as Record<string, unknown>;
      return Buffer.from(JSON.stringify({ ...session, cols: 100_000, rows: 100_000 }), 'utf8');
    });
    const file = join(agent.home, 'huge-terminal.vosimg');
    writeFileSync(file, joinImage(records));
    const e = await failure(client.request('session.restore', { file }));
    expect(e.code).toBe('bad_image');
    expect(e.details.record).toBe(`SESSION #${recordIndex(records, RECORD.SESSION)}`);
    expect(e.message).toMatch(/cols/);
    // Still answering, and without the screen it was asked to hold.
    expect(Array.isArray(await client.request('session.list', {}))).toBe(true);
    const rss = await waitFor('the agent RSS', () => /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${agent.proc.pid}/status`, 'utf8'))?.[1]);
    expect(Number(rss) * 1024).toBeLessThan(400 * 1024 * 1024);
  });

  it('a SESSION record whose fields are of the wrong types is refused the same way', async () => {
    for (const change of [{ args: 'not a list' }, { cols: 80.5 }, { name: 7 }, { snapshot: null }, { version: 2 }]) {
      const records = withPayload(splitImage(good), RECORD.SESSION, (p) =>
        Buffer.from(JSON.stringify({ ...(JSON.parse(p.toString('utf8')) as object), ...change }), 'utf8'),
      );
      const file = join(agent.home, 'bad-session.vosimg');
      writeFileSync(file, joinImage(records));
      const e = await failure(client.request('session.restore', { file }));
      expect(e.code, JSON.stringify(change)).toBe('bad_image');
      expect(e.details.record).toBe(`SESSION #${recordIndex(records, RECORD.SESSION)}`);
    }
  });
});
