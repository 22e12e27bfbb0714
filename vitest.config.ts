import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["services/*/src/**/*.test.ts", "packages/*/src/**/*.test.ts", "cli/src/**/*.test.ts", "deploy/**/*.test.ts", "test/**/*.test.ts"],
    // test/images builds and runs the container images: `pnpm test:images` (a CI step of its own).
    exclude: ["**/node_modules/**", "test/images/**"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Test files run in parallel processes; each has its own database and Redis prefix.
    pool: "forks",
    maxWorkers: 2,
    globalSetup: ["packages/testkit/src/global-setup.ts"],
    reporters: ["default", "./packages/testkit/src/summary-reporter.ts"],
  },
});
