/**
 * The order test files start in (vitest.config.ts): the longest first, so that the two workers
 * finish together instead of one of them starting a three-minute file when the other is nearly
 * done. Vitest's own order (BaseSequencer) puts the longest first only when its cache of the
 * last run's durations is there (not on a fresh CI checkout: then the largest files go first,
 * and size says little about how long a file waits on real agents). So the files known to be
 * long come first, in this order; the rest follow in vitest's order.
 *
 * LONGEST: measured per file on 2 cores; keep it in step when a file grows or shrinks by much.
 */
import { BaseSequencer, type TestSpecification } from 'vitest/node';

export const LONGEST = [
  'test/runtime/checkpoint-restore.test.ts',
  'test/community/migration-failures.test.ts',
  'test/community/pairing.test.ts',
  'test/community/migration-relay.test.ts',
  'test/agent/schedule.test.ts',
  'test/runtime/image-store.test.ts',
  'test/community/remote.test.ts',
  'test/community/migration.test.ts',
  'test/agent/outlive.test.ts',
  'test/cli/cli.test.ts',
  'test/agent/recover.test.ts',
  'test/community/discovery.test.ts',
  'test/community/migration-listen.test.ts',
  'test/runtime/listen.test.ts',
  'test/runtime/fuzz-restore-plan.test.ts',
  'test/runtime/fuzz-image.test.ts',
];

export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rest = await super.sort(files);
    const rank = (f: TestSpecification): number => {
      const i = LONGEST.findIndex((p) => f.moduleId.endsWith(`/${p}`));
      return i < 0 ? LONGEST.length : i;
    };
    // Array.prototype.sort is stable: the rest keep vitest's order.
    return rest.sort((a, b) => rank(a) - rank(b));
  }
}
