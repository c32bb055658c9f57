import { defineConfig } from 'vitest/config';
import LongestFirst from './test/sequencer.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup-env.ts'],
    // The test programs are built once for the run (test/programs-setup.ts).
    globalSetup: ['test/leak-check.ts', 'test/programs-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Real ptys, agents and a browser: two cores are shared by at most two test files at once.
    maxWorkers: 2,
    // The longest files start first (test/sequencer.ts), so the two workers finish together.
    sequence: { sequencer: LongestFirst },
    reporters: ['default'],
  },
});
