import { describe, expect, it } from "vitest";
import { CAPPED_BACKOFF_MAX_MS, cappedBackoffMs, JOBS } from "./jobs.ts";

describe("the capped backoff", () => {
  it("doubles from the delay and never waits longer than the cap, however many tries", () => {
    const none = () => 0;
    expect([1, 2, 3].map((n) => cappedBackoffMs(n, 1_000, none))).toEqual([1_000, 2_000, 4_000]);
    expect(cappedBackoffMs(4, 1_000, none)).toBe(CAPPED_BACKOFF_MAX_MS);
    expect(cappedBackoffMs(999_999, 1_000, none)).toBe(CAPPED_BACKOFF_MAX_MS);
    expect(CAPPED_BACKOFF_MAX_MS).toBeLessThanOrEqual(10_000);
  });

  it("takes up to a fifth off at random", () => {
    expect(cappedBackoffMs(50, 1_000, () => 1)).toBe(CAPPED_BACKOFF_MAX_MS * 0.8);
    expect(cappedBackoffMs(1, 1_000, () => 0.5)).toBe(900);
  });

  it("is what a batch chunk retries with", () => {
    expect(JOBS["batch.lines"].defaults.backoff.type).toBe("capped");
  });
});
