import { describe, expect, it } from "vitest";
import { planChoice } from "./plan.ts";
import { createPrefixCache } from "./prefix-cache.ts";
import { createLatencyModel } from "./latency.ts";
import { EOT_ID, encode } from "./tokenizer.ts";

const base = { promptKey: "prompt", seed: 1, greedy: false, choiceIndex: 0 };

describe("planChoice", () => {
  it("generates prose whose tokens re-encode to the same count, ending with <|eot_id|>", () => {
    for (let seed = 0; seed < 20; seed++) {
      const plan = planChoice({ ...base, seed, maxTokens: 10_000 });
      expect(plan.finishReason).toBe("stop");
      expect(plan.endedWithEos).toBe(true);
      expect(plan.tokens[plan.tokens.length - 1]).toBe(EOT_ID);
      expect(encode(plan.text)).toEqual(plan.tokens.slice(0, -1));
      expect(plan.deltas.join("")).toBe(plan.text);
      expect(plan.text.endsWith(".")).toBe(true);
    }
  });

  it("cuts at max tokens with finish length, and ignore_eos always runs to max tokens", () => {
    const plan = planChoice({ ...base, maxTokens: 5 });
    expect(plan).toMatchObject({ finishReason: "length", endedWithEos: false });
    expect(plan.tokens).toHaveLength(5);
    const long = planChoice({ ...base, maxTokens: 3000, ignoreEos: true });
    expect(long.tokens).toHaveLength(3000);
    expect(long.finishReason).toBe("length");
  });

  it("stops at the earliest stop string, dropping it (vLLM) or keeping it (TGI), counting the tokens generated", () => {
    const full = planChoice({ ...base, maxTokens: 200 }).text;
    const stop = full.slice(20, 26);
    const at = full.indexOf(stop);
    const dropped = planChoice({ ...base, maxTokens: 200, stop: [stop] });
    expect(dropped.text).toBe(full.slice(0, at));
    expect(dropped.stopReason).toBe(stop);
    expect(dropped.deltas.join("")).toBe(dropped.text);
    // Generation stops on the token that completes the stop string.
    expect(encode(full.slice(0, at + stop.length)).length).toBeLessThanOrEqual(dropped.tokens.length);
    const kept = planChoice({ ...base, maxTokens: 200, stop: [stop], includeStopInOutput: true });
    expect(kept.text).toBe(full.slice(0, at + stop.length));
  });

  it("makes greedy choices identical and sampled choices differ", () => {
    const g0 = planChoice({ ...base, greedy: true, seed: 0, maxTokens: 30 });
    const g1 = planChoice({ ...base, greedy: true, seed: 0, choiceIndex: 1, maxTokens: 30 });
    expect(g1.text).toBe(g0.text);
    const s1 = planChoice({ ...base, choiceIndex: 1, maxTokens: 30 });
    expect(s1.text).not.toBe(planChoice({ ...base, maxTokens: 30 }).text);
  });
});

describe("prefix cache", () => {
  it("hits whole 16-token blocks of a repeated prefix and evicts the least recently used", () => {
    const cache = createPrefixCache(4);
    const a = Array.from({ length: 40 }, (_, i) => i);
    expect(cache.lookupAndInsert(a)).toBe(0);
    expect(cache.lookupAndInsert(a)).toBe(32);
    expect(cache.lookupAndInsert([...a.slice(0, 20), 999, 998])).toBe(16);
    expect(cache.lookupAndInsert(Array.from({ length: 64 }, (_, i) => 1000 + i))).toBe(0);
    expect(cache.lookupAndInsert(a)).toBe(0);
  });
});

describe("latency model", () => {
  it("adds prefill per uncached token, bounds jitter, and stretches with load", () => {
    const fixed = createLatencyModel({ ttftMs: 50, itlMs: 10, prefillUsPerToken: 100, jitter: 0, loadFactor: 3, maxNumSeqs: 11 });
    expect(fixed.firstToken(1000, 1)).toBe(150);
    expect(fixed.interToken(1)).toBe(10);
    expect(fixed.interToken(6)).toBe(20);
    expect(fixed.interToken(11)).toBe(30);
    let r = 0;
    const jittery = createLatencyModel({ ttftMs: 50, itlMs: 10, prefillUsPerToken: 0, jitter: 0.1, loadFactor: 1, maxNumSeqs: 1 }, () => {
      r = (r + 0.618) % 1;
      return r;
    });
    for (let i = 0; i < 200; i++) {
      const x = jittery.interToken(1);
      expect(x).toBeGreaterThanOrEqual(8);
      expect(x).toBeLessThanOrEqual(12);
    }
  });
});
