/**
 * A migration offer names files this machine must compare by hash (security review, issue 15
 * item 9): the hashing must not stop the agent's event loop (`vos ls` waited 3 s), and one offer
 * may make this machine read only so many bytes.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FileNeed } from '../../src-main/api/protocol.js';
import { HASH_BUDGET_PER_OFFER, fileHashAsync, missingHere, sessionNeeds } from '../../src-main/agent/migration/preflight.js';
import { spawn } from 'node:child_process';

let dir: string;
beforeEach(() => void (dir = mkdtempSync(join(tmpdir(), 'vos-preflight-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const MiB = 1024 * 1024;

/** The longest the event loop stands still while `work` runs (a 5 ms ticker's longest gap). */
async function worstStall(work: () => Promise<void>): Promise<number> {
  let last = Date.now();
  let worst = 0;
  const ticker = setInterval(() => {
    const now = Date.now();
    worst = Math.max(worst, now - last);
    last = now;
  }, 5);
  try {
    await work();
  } finally {
    clearInterval(ticker);
    worst = Math.max(worst, Date.now() - last); // a loop held to the end has not ticked since
  }
  return worst;
}

/** `n` sparse files of `size` bytes (reading them costs the hashing, not the disk). */
function bigFiles(n: number, size: number): FileNeed[] {
  const zeros = createHash('sha256');
  const block = Buffer.alloc(MiB);
  for (let done = 0; done < size; done += MiB) zeros.update(block.subarray(0, Math.min(MiB, size - done)));
  const hash = zeros.digest('hex');
  return Array.from({ length: n }, (_, i) => {
    const path = join(dir, `big-${i}`);
    writeFileSync(path, '');
    truncateSync(path, size);
    return { path, size, hash, mode: 0o644 };
  });
}

describe('comparing the files of an offer', () => {
  it('keeps the event loop turning while 20 files of 50 MiB are hashed', async () => {
    const files = bigFiles(20, 50 * MiB);
    const started = Date.now();
    const worst = await worstStall(async () => {
      const { problems } = await missingHere([], files, 0, undefined, 2 * HASH_BUDGET_PER_OFFER);
      expect(problems).toEqual([]);
    });
    console.log(`hashing 20 x 50 MiB took ${Date.now() - started} ms; the event loop stood still for at most ${worst} ms`);
    expect(worst).toBeLessThan(250);
  }, 120_000);

  it('refuses an offer that would make it read more than its budget', async () => {
    const files = bigFiles(3, 40 * MiB);
    const { problems } = await missingHere([], files, 0, undefined, 100 * MiB);
    expect(problems.join('; ')).toMatch(/more than the 104857600 bytes/);
  });

  it('hashes as the synchronous reading did (whole up to 64 MiB, edges beyond)', async () => {
    const path = join(dir, 'f');
    writeFileSync(path, 'hello');
    expect(await fileHashAsync(path, 5)).toBe(createHash('sha256').update('hello').digest('hex'));
  });

  it('lists and hashes the files a session has open (the source of a move) without holding the event loop', async () => {
    const files = bigFiles(10, 50 * MiB);
    const opens = files.map((f, i) => `exec ${i + 3}<'${f.path}'`).join('; ');
    const child = spawn('bash', ['-c', `${opens}; echo ready; exec sleep 1000`], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.once('data', () => resolve());
        child.once('exit', () => reject(new Error('the shell holding the files ended')));
      });
      let needs: Awaited<ReturnType<typeof sessionNeeds>> | null = null;
      const worst = await worstStall(async () => void (needs = await sessionNeeds(child.pid!)));
      const got = new Map(needs!.files.map((f) => [f.path, f.hash]));
      for (const f of files) expect(got.get(f.path)).toBe(f.hash);
      console.log(`the source hashed 10 x 50 MiB; the event loop stood still for at most ${worst} ms`);
      expect(worst).toBeLessThan(250);
    } finally {
      child.kill('SIGKILL');
    }
  }, 120_000);
});
