/**
 * What the migration test files (test/community/migration*.test.ts) share: the test programs
 * built once per file, a pair of paired agents on two simulated hosts for each test (SimLab:
 * stopped after it), and the checks a move that failed must pass (the original still here,
 * nothing there). Call migrationLab() inside the file's describe block. The pairs come from
 * SimLab.pairedAgents (paired once per file, then started from what they remembered).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import type { ApiClient } from '../../src-main/api/client.js';
import { VosError } from '../../src-main/api/errors.js';
import type { ApiEvent } from '../../src-main/api/protocol.js';
import { waitFor } from './agent-process.js';
import { SimLab, type HostAgent } from './community.js';
import { fillTestPrograms } from './test-programs.js';

export type AgentOptions = Parameters<SimLab['agent']>[2];

export interface MigrationLab {
  lab: SimLab;
  /** The built test programs (test/runtime/programs); set in beforeAll. */
  readonly programs: string;
  /** A scratch directory of the file, removed after it; set in beforeAll. */
  readonly scratch: string;
  /** Two hosts, alpha on the first and beta on the second, paired. */
  pair(bOptions?: AgentOptions, aOptions?: AgentOptions): Promise<[HostAgent, HostAgent]>;
}

export function migrationLab(): MigrationLab {
  const lab = new SimLab();
  let programs = '';
  let scratch = '';
  beforeAll(() => {
    scratch = mkdtempSync('/tmp/vos-mig-');
    programs = join(scratch, 'programs');
    fillTestPrograms(programs);
  });
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));
  return {
    lab,
    get programs() {
      return programs;
    },
    get scratch() {
      return scratch;
    },
    pair(bOptions = {}, aOptions = {}) {
      return lab.pairedAgents(aOptions, bOptions);
    },
  };
}

/** The last "token=T count=N" line of a counter's screen. */
export const counts = (text: string): { token: string; count: number } | null => {
  const all = [...text.matchAll(/token=([0-9a-f]+) count=(\d+)/g)];
  const last = all.at(-1);
  return last ? { token: last[1]!, count: Number(last[2]) } : null;
};

/** The original is still here, running, and counting on with the same token. */
export async function stillHere(a: HostAgent, id: string, before: { token: string; count: number }): Promise<void> {
  const ls = await a.sessions();
  expect(ls.find((s) => s.id === id)?.state).toBe('running');
  await waitFor('the counter to go on here', async () => {
    const now = counts(await a.screen(id));
    return now !== null && now.token === before.token && now.count > before.count + 3;
  });
}

/** A move asked for through the API that fails: its error, as the client sees it. */
export async function failedMove(agent: HostAgent, params: { id: string; peer: string; sendFilesUpTo?: number }): Promise<VosError> {
  const client = await agent.connect();
  const err = await client.request('session.migrate', params).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(VosError);
  return err as VosError;
}

export async function nothingThere(b: HostAgent): Promise<void> {
  await waitFor('no copy on beta', async () => (await b.sessions()).length === 0, 15_000);
}

/** Starts moving a 768 MiB process; resolves once the image is well on its way. */
export async function startBigMove(a: HostAgent, programs: string): Promise<{ client: ApiClient; id: string; outcome: Promise<string> }> {
  const client = await a.connect();
  const s = await client.request('session.create', { command: join(programs, 'memhog'), args: ['768'] });
  await client.request('session.wait', { id: s.id, pattern: '^ready 768 MiB$', timeoutMs: 30_000 });
  const progress: ApiEvent[] = [];
  client.onEvent((e) => progress.push(e));
  const outcome = client.request('session.migrate', { id: s.id, peer: 'beta' }).then(
    () => 'moved',
    (e: Error) => e.message,
  );
  // Well on its way: 32 MiB sent, while the pod runs (live rounds) or frozen (the final part).
  // Copying 768 MiB takes seconds, many more on a loaded machine: the wait is generous.
  await waitFor(
    'the image to be on its way',
    () => progress.some((e) => e.event === 'migration.progress' && (e.phase === 'copying' || e.phase === 'sending') && e.sent > 32 * 1024 * 1024),
    60_000,
  );
  return { client, id: s.id, outcome };
}

/** The process is still here, running, with every byte of its memory. */
export async function memoryIntact(client: ApiClient, id: string): Promise<void> {
  await client.request('session.input', { id, data: '\r' });
  await client.request('session.wait', { id, pattern: '^check ok$', timeoutMs: 20_000 });
  expect((await client.request('session.list', {})).find((s) => s.id === id)?.state).toBe('running');
}
