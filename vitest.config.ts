import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['functions/**/*.test.ts', 'shared/**/*.test.ts', 'local/**/*.test.ts', 'test/**/*.test.ts'],
    // One local stack for the run (real Postgres and Redis: DATABASE_URL / REDIS_URL, or embedded).
    globalSetup: ['test/global-setup.ts'],
    setupFiles: ['test/setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: files share one stack, so a little parallelism is all that helps.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
