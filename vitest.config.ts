import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // End-to-end files each start their own Dovecot; two cores do not gain from more forks.
    maxWorkers: 2,
    // Workers' scratch dirs (a child's HOME) live in one root this removes when the run ends.
    globalSetup: ['test/support/scratch-root.ts'],
    // One more try for a failed test: a real failure fails both tries. The "Server shutting
    // down" flake this was added for is found and fixed (a Cyrus lab's master signalled the
    // shared process group; test/e2e/lab-isolation.test.ts); the retry stays as a guard for
    // a loaded machine, and the lab reports any foreign signal on stderr (lab/dovecot.ts).
    retry: 1,
  },
});
