/**
 * A machine that does not let the agent make namespaces (Ubuntu's AppArmor rule, a container
 * without them): the agent's probe at start finds out (here its unshare is made to fail by the
 * probe's test hook, VOS_TEST_PROBE_NO_USERNS), sessions still start, without a pod, marked as
 * such everywhere, and checkpoints and moves of them are refused up front with the reason.
 */
import { readlinkSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, vos, waitFor, type DaemonHandle } from '../helpers/agent-process.js';

let agent: DaemonHandle;

beforeAll(async () => {
  agent = await startDaemon({ args: ['--name', 'no-pods', '--no-mdns'], env: { VOS_TEST_PROBE_NO_USERNS: '1' } });
});

afterAll(async () => {
  await agent?.stop();
});

describe('an agent on a machine without user namespaces', () => {
  it('says so in agent.info and its log, with the fix', async () => {
    const client = await agent.connect();
    const info = await client.request('agent.info', {});
    expect(info.pods?.ok).toBe(false);
    expect(info.pods?.reason).toContain('VOS_TEST_PROBE_NO_USERNS');
    expect(info.pods?.fix).toBeTruthy();
    expect(agent.stdout() + agent.stderr()).toContain('sessions start without a pod');
  });

  it('starts sessions without a pod, marked, and refuses to checkpoint or move them', async () => {
    const run = await vos(agent.home, ['run', '-d', '--name', 'plain', '--', 'sh', '-c', 'echo started; exec cat']);
    expect(run.code).toBe(0);
    const id = run.stdout.trim();
    // vos run says it once, with the reason.
    expect(run.stderr.match(/cannot be checkpointed or moved/g)).toHaveLength(1);
    expect(run.stderr).toContain('VOS_TEST_PROBE_NO_USERNS');
    await waitFor('the program to print', async () => (await vos(agent.home, ['screen', id])).stdout.includes('started'), 15_000);

    const [s] = (JSON.parse((await vos(agent.home, ['ls', '--json'])).stdout) as Array<{ id: string; pod: boolean; cannotCheckpoint: string | null; pid: number }>).filter(
      (x) => x.id === id,
    );
    expect(s!.pod).toBe(false);
    expect(s!.cannotCheckpoint).toContain('VOS_TEST_PROBE_NO_USERNS');
    // Really without a pod: the program is in the agent's own pid namespace.
    expect(readlinkSync(`/proc/${s!.pid}/ns/pid`)).toBe(readlinkSync(`/proc/${agent.proc.pid}/ns/pid`));

    const ls = await vos(agent.home, ['ls']);
    expect(ls.stdout).toMatch(new RegExp(`${id}.*running, cannot be checkpointed or moved`));
    expect(ls.stdout).toMatch(/^cannot be checkpointed or moved: .*VOS_TEST_PROBE_NO_USERNS/m);

    const checkpoint = await vos(agent.home, ['checkpoint', id]);
    expect(checkpoint.code).not.toBe(0);
    expect(checkpoint.stderr).toContain('cannot be checkpointed or moved');
    expect(checkpoint.stderr).toContain('Fix:');
    const schedule = await vos(agent.home, ['schedule', id, '--every', '30m']);
    expect(schedule.code).not.toBe(0);
    expect(schedule.stderr).toContain('cannot be checkpointed or moved');
    // The session goes on.
    await vos(agent.home, ['send', id, 'still-here\\r']);
    await waitFor('the session to echo', async () => (await vos(agent.home, ['screen', id])).stdout.includes('still-here'), 15_000);
  });
});
