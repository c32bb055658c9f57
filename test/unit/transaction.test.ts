/**
 * The migration's small transaction engine: steps run in order; a failure undoes those that ran,
 * in reverse, once each; a failing undo is logged and never hides the failure; after the point of
 * no return nothing is undone. And a migration's error keeps the code of its cause.
 */
import { describe, expect, it } from 'vitest';
import { VosError } from '../../src-main/api/errors.js';
import { runSteps, type Step } from '../../src-main/agent/migration/transaction.js';

/** Steps that record what they did in `trace`; `fail` names the step (or undo) that throws. */
function steps(names: string[], trace: string[], fail: { run?: string; undo?: string; error?: Error } = {}, final?: string): Step[] {
  return names.map((name) => ({
    name,
    final: name === final,
    run: async () => {
      await Promise.resolve();
      if (fail.run === name) throw fail.error ?? new Error(`${name} failed`);
      trace.push(`run ${name}`);
    },
    undo: () => {
      trace.push(`undo ${name}`);
      if (fail.undo === name) throw new Error(`undoing ${name} failed`);
    },
  }));
}

describe('runSteps', () => {
  it('runs every step in order and undoes nothing when all succeed', async () => {
    const trace: string[] = [];
    await runSteps(steps(['a', 'b', 'c'], trace), () => {});
    expect(trace).toEqual(['run a', 'run b', 'run c']);
  });

  it('on a failure undoes the steps that ran, in reverse, once each, and passes the failure on', async () => {
    const trace: string[] = [];
    const error = new Error('c failed');
    await expect(runSteps(steps(['a', 'b', 'c', 'd'], trace, { run: 'c', error }), () => {})).rejects.toBe(error);
    // c failed: it cleans up after itself; d never ran.
    expect(trace).toEqual(['run a', 'run b', 'undo b', 'undo a']);
  });

  it('skips steps without an undo', async () => {
    const trace: string[] = [];
    const list = steps(['a', 'b', 'c'], trace, { run: 'c' });
    delete list[1]!.undo;
    await expect(runSteps(list, () => {})).rejects.toThrow('c failed');
    expect(trace).toEqual(['run a', 'run b', 'undo a']);
  });

  it('logs an undo that fails, goes on undoing, and reports the original failure', async () => {
    const trace: string[] = [];
    const log: string[] = [];
    await expect(runSteps(steps(['a', 'b', 'c'], trace, { run: 'c', undo: 'b' }), (m) => log.push(m))).rejects.toThrow('c failed');
    expect(trace).toEqual(['run a', 'run b', 'undo b', 'undo a']);
    expect(log).toEqual(['cannot undo b: undoing b failed']);
  });

  it('undoes nothing after the point of no return', async () => {
    const trace: string[] = [];
    await expect(runSteps(steps(['a', 'commit', 'go'], trace, { run: 'go' }, 'commit'), () => {})).rejects.toThrow('go failed');
    expect(trace).toEqual(['run a', 'run commit']);
  });

  it('undoes the steps before the point of no return when that step itself fails', async () => {
    const trace: string[] = [];
    await expect(runSteps(steps(['a', 'b', 'commit', 'go'], trace, { run: 'commit' }, 'commit'), () => {})).rejects.toThrow('commit failed');
    expect(trace).toEqual(['run a', 'run b', 'undo b', 'undo a']);
  });

  it('passes a cause on: a step failing for a known reason reports it as the migration error\'s cause', async () => {
    const trace: string[] = [];
    const offline = new VosError('peer_offline', 'beta is not linked');
    const list: Step[] = [
      ...steps(['a'], trace),
      {
        name: 'offer',
        run: () => {
          throw VosError.wrap('migration_failed', `count (abc) stays here: ${offline.message}`, offline);
        },
      },
    ];
    const err = await runSteps(list, () => {}).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(VosError);
    expect((err as VosError).code).toBe('migration_failed');
    expect((err as VosError).details.cause).toBe('peer_offline');
    // ...and it crosses the API boundary as it is.
    const back = VosError.fromPayload((err as VosError).toPayload());
    expect(back.code).toBe('migration_failed');
    expect(back.details.cause).toBe('peer_offline');
    expect(back.message).toBe('count (abc) stays here: beta is not linked');
    expect(trace).toEqual(['run a', 'undo a']);
  });
});
