import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // End-to-end files each start their own Dovecot; two cores do not gain from more forks.
    maxWorkers: 2,
    // One more try for a failed test. Clean-clone runs twice saw a lab's Dovecot say "Server
    // shutting down" mid-test (cause not found); a real failure fails both tries.
    retry: 1,
  },
});
