import { describe, expect, it } from "vitest";
import { prefixHashes } from "./prefix-hash.ts";

describe("prefixHashes", () => {
  it("hashes whole leading blocks cumulatively", () => {
    const a = prefixHashes("x".repeat(100) + "A".repeat(100) + "tail", 100);
    const b = prefixHashes("x".repeat(100) + "B".repeat(100) + "tail", 100);
    expect(a).toHaveLength(2);
    expect(a[0]).toBe(b[0]);
    expect(a[1]).not.toBe(b[1]);
  });

  it("a later block's hash depends on everything before it", () => {
    const a = prefixHashes("A".repeat(100) + "same".repeat(25), 100);
    const b = prefixHashes("B".repeat(100) + "same".repeat(25), 100);
    expect(a[1]).not.toBe(b[1]);
  });

  it("caps the number of blocks and ignores a partial last block", () => {
    expect(prefixHashes("y".repeat(99), 100)).toEqual([]);
    expect(prefixHashes("y".repeat(10_000), 100, 8)).toHaveLength(8);
  });

  it("is deterministic and rarely collides", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20_000; i++) for (const h of prefixHashes(`system prompt number ${i}`.padEnd(64, "."), 64)) seen.add(h);
    expect(seen.size).toBe(20_000);
    expect(prefixHashes("hello world".repeat(100))).toEqual(prefixHashes("hello world".repeat(100)));
  });
});
