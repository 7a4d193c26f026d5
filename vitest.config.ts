import { defineConfig } from 'vitest/config'

// Two projects: `unit` (fast, pure and in-process) and `integration` (many libp2p nodes, processes).
// `npm test` runs both; integration files end in `.int.test.ts`.
export default defineConfig({
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: ['test/**/*.int.test.ts'],
          testTimeout: 20_000,
          // Unit files share a worker's module graph instead of re-importing it per file: the unit project
          // took 40 s isolated and 25 s shared on the 2-core machine (the split into small modules made
          // imports 21% of it). Unit tests keep no module-level state between files.
          isolate: false,
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/**/*.int.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
    ],
  },
})
