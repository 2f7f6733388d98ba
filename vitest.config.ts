import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['functions/**/*.test.ts', 'shared/**/*.test.ts', 'local/**/*.test.ts', 'test/**/*.test.ts'],
    // One local stack for the run (real Postgres and Redis: DATABASE_URL / REDIS_URL, or embedded).
    globalSetup: ['test/global-setup.ts'],
    setupFiles: ['test/setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Files share one stack and several start stacks of their own (a second Miniflare, a private
    // Redis or Postgres): on a 2-core machine running them one at a time keeps timing out of the results.
    fileParallelism: false,
    maxWorkers: 1,
    reporters: ['default'],
  },
});
