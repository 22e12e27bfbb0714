/**
 * Prints one plain closing line, `N passed, N failed[, N skipped]`, after vitest's own
 * report, so CI logs (and tools that read them) see the totals without ANSI colour.
 */
import { appendFileSync } from "node:fs";
import type { Reporter, TestModule } from "vitest/node";

export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const m of testModules) {
      for (const t of m.children.allTests()) {
        const state = t.result().state;
        if (state === "passed") passed++;
        else if (state === "failed") failed++;
        else skipped++;
      }
      if (m.state() === "failed" && [...m.children.allTests()].length === 0) failed++;
    }
    process.stdout.write(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}\n`);
    // `npm test` runs vitest twice (parallel, then the serial suites) and adds these up.
    if (process.env.INFERA_SUMMARY_FILE) appendFileSync(process.env.INFERA_SUMMARY_FILE, `${passed} ${failed} ${skipped}\n`);
  }
}
