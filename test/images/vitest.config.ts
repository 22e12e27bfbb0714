import { defineConfig } from "vitest/config";

// `pnpm test:images`: builds every image (global setup) and runs the platform from them.
export default defineConfig({
  test: {
    root: new URL("../..", import.meta.url).pathname,
    include: ["test/images/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: "forks",
    maxWorkers: 1,
    globalSetup: ["packages/testkit/src/global-setup.ts", "test/images/global-setup.ts"],
    reporters: ["default"],
  },
});
