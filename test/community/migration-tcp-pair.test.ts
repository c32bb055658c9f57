/**
 * A program whose TCP connections have both ends in the session moves between real agents on
 * simulated hosts (network namespaces): its connections are made again on the target's loopback,
 * at the same ports, with the bytes that were in flight in both directions (test/runtime/programs/
 * tcp-pair.c: one connection between two processes through a listener that stays open, one
 * half-closed IPv6 connection inside one process). Root only.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, waitFor } from '../helpers/agent-process.js';
import { SimLab, multiHostSkipReason, pairAgents } from '../helpers/community.js';

const unavailable = multiHostSkipReason('test/community/migration-tcp-pair.test.ts');

describe.skipIf(unavailable !== null)('moving a program with TCP connections inside its session', () => {
  const lab = new SimLab();
  let programs: string;

  beforeAll(() => {
    programs = mkdtempSync('/tmp/vos-mig-tcp-');
    execFileSync('make', ['-s', '-C', join(ROOT, 'test', 'runtime', 'programs'), `OUT=${programs}`]);
  });
  afterAll(() => rmSync(programs, { recursive: true, force: true }));

  it('its connections come back connected on the target, with their bytes in flight, at the same ports', async () => {
    lab.network(2);
    const a = await lab.agent(0, 'alpha');
    const b = await lab.agent(1, 'beta');
    await pairAgents(a, b);
    const id = (await a.vos(['run', '-d', '--name', 'pair', '--', join(programs, 'tcp-pair'), 'both'])).stdout.trim();
    const ready = await waitFor('the connections to be ready', async () =>
      /ready fork=(\d+) single=(\d+,\d+)/.exec(await a.screen(id)),
    );
    const moved = await a.vos(['migrate', id, 'beta', '--json']);
    expect(moved.stderr).toBe('');
    expect(moved.code).toBe(0);
    const r = JSON.parse(moved.stdout) as { session: { id: string; restoreNote: string | null } };
    expect(r.session.restoreNote).toBeNull();
    const there = r.session.id.includes('@') ? r.session.id.slice(0, r.session.id.indexOf('@')) : r.session.id;
    await b.vos(['send', there, 'go\\r']);
    const screen = await waitFor('the program to check its connections there', async () => {
      const text = await b.screen(there);
      return /all ok|pair BAD/.test(text) ? text : null;
    });
    expect(screen).not.toContain('BAD');
    expect(screen).toContain(`single pair ok ports=${ready[2]}`);
    expect(screen).toContain(`fork pair ok ports=${ready[1]} listener=${ready[1]}`);
  }, 90_000);
});
