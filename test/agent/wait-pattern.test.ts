/**
 * `session.wait` against hostile patterns (security review, issue 15): a pattern that makes a
 * backtracking matcher take exponential time must not stop the agent, and a pattern RE2 cannot
 * run is refused when the request arrives, with a message saying why.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { VosError } from '../../src-main/api/errors.js';
import { compileScreenPattern } from '../../src-main/agent/session/screen-pattern.js';
import { startDaemon, vos, waitFor, type DaemonHandle } from '../helpers/agent-process.js';

const daemons: DaemonHandle[] = [];

afterEach(async () => {
  await Promise.all(daemons.splice(0).map((d) => d.stop()));
});

async function daemon(): Promise<DaemonHandle> {
  const d = await startDaemon();
  daemons.push(d);
  return d;
}

describe('session.wait patterns', () => {
  it('answers a catastrophic pattern within its timeout while the agent keeps serving others', async () => {
    const d = await daemon();
    const client = await d.connect();
    // Rows of 199 a's and a b: ^(a+)+$ backtracks through 2^199 ways of splitting each row.
    const line = `${'a'.repeat(199)}b`;
    const session = await client.request('session.create', {
      command: 'sh',
      args: ['-c', `for i in 1 2 3 4 5 6 7 8; do echo ${line}; done; exec cat`],
      cols: 220,
      rows: 24,
    });
    await client.request('session.wait', { id: session.id, pattern: 'aaab$', timeoutMs: 10_000 });

    const started = Date.now();
    const waited = client.request('session.wait', { id: session.id, pattern: '^(a+)+$', timeoutMs: 1500 }).then(
      () => null,
      (err: unknown) => err,
    );
    // Meanwhile other requests are answered promptly.
    const latencies: number[] = [];
    const other = await d.connect();
    while (Date.now() - started < 1200) {
      const t = Date.now();
      await other.request('agent.info', {});
      latencies.push(Date.now() - t);
      await new Promise((r) => setTimeout(r, 50));
    }
    const err = await waited;
    const elapsed = Date.now() - started;
    expect(err).toBeInstanceOf(VosError);
    expect((err as VosError).code).toBe('timeout');
    expect(elapsed).toBeLessThan(4000);
    expect(latencies.length).toBeGreaterThan(3);
    expect(Math.max(...latencies)).toBeLessThan(500);
  });

  it('refuses backreferences and lookaround at once, saying why', async () => {
    const d = await daemon();
    const client = await d.connect();
    const session = await client.request('session.create', { command: 'cat' });
    for (const pattern of ['(a)\\1', 'foo(?=bar)', '(?<!x)y']) {
      const t = Date.now();
      const err = await client.request('session.wait', { id: session.id, pattern, timeoutMs: 30_000 }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, pattern).toBeInstanceOf(VosError);
      expect((err as VosError).code, pattern).toBe('invalid_params');
      expect((err as VosError).message, pattern).toMatch(/RE2 syntax.*no backreferences.*no lookaround/);
      expect(Date.now() - t, pattern).toBeLessThan(2000);
    }
    const badFlags = await client.request('session.wait', { id: session.id, pattern: 'x', flags: 'x', timeoutMs: 100 }).catch((e: unknown) => e);
    expect((badFlags as VosError).code).toBe('invalid_params');

    // The CLI says it too, and fails.
    const cli = await vos(d.home, ['wait', session.id, '--text', 'a(?=b)', '--timeout', '30']);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/RE2 syntax/);
  });

  it('keeps the flags of a JavaScript pattern: m by default, i and s on request', async () => {
    const d = await daemon();
    const client = await d.connect();
    const session = await client.request('session.create', { command: 'sh', args: ['-c', 'echo Hello; echo World; exec cat'] });
    await waitFor('the output', async () => (await client.request('session.screen', { id: session.id })).lines.includes('World'));
    await expect(client.request('session.wait', { id: session.id, pattern: '^World$', timeoutMs: 2000 })).resolves.toBeTruthy();
    await expect(client.request('session.wait', { id: session.id, pattern: '^world$', flags: 'mi', timeoutMs: 2000 })).resolves.toBeTruthy();
    await expect(client.request('session.wait', { id: session.id, pattern: 'Hello.World', flags: 's', timeoutMs: 2000 })).resolves.toBeTruthy();
    const noMultiline = await client.request('session.wait', { id: session.id, pattern: '^World$', flags: '', timeoutMs: 300 }).catch((e: unknown) => e);
    expect((noMultiline as VosError).code).toBe('timeout');
  });
});

describe('compileScreenPattern', () => {
  it('matches in linear time', () => {
    const p = compileScreenPattern('^(a+)+$');
    const text = `${'a'.repeat(5000)}b\n`.repeat(20);
    const t = Date.now();
    expect(p.test(text)).toBe(false);
    expect(Date.now() - t).toBeLessThan(1000);
    expect(p.test(`x\n${'a'.repeat(10)}\ny`)).toBe(true);
  });
});
