import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One PostgreSQL and one migrated template per run; each file clones its own database.
    globalSetup: ['test/globalSetup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    // Machines have 2 cores, and PostgreSQL needs them as much as vitest does.
    pool: 'forks',
    maxWorkers: 2,
  },
});
