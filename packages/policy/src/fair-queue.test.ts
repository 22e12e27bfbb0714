import { describe, expect, it } from "vitest";
import { FairQueue } from "./fair-queue.ts";

interface Item {
  tenant: string;
  n: number;
  tokens: number;
}

function item(tenant: string, n: number, tokens = 100): Item {
  return { tenant, n, tokens };
}

function push(q: FairQueue<Item>, it: Item, priority = 0): void {
  q.push(it, { tenantId: it.tenant, inputTokens: it.tokens, priority });
}

describe("FairQueue (VTC)", () => {
  it("is FIFO for one tenant", () => {
    const q = new FairQueue<Item>();
    for (let i = 0; i < 5; i++) push(q, item("a", i));
    expect(q.size).toBe(5);
    expect([1, 2, 3, 4, 5].map(() => q.pop()?.n)).toEqual([0, 1, 2, 3, 4]);
    expect(q.pop()).toBeUndefined();
  });

  it("a flooding tenant does not starve a light one", () => {
    const q = new FairQueue<Item>();
    for (let i = 0; i < 1000; i++) push(q, item("heavy", i));
    push(q, item("light", 0));
    // The light request goes out within a couple of dispatches, not after 1000.
    const order: string[] = [];
    for (let i = 0; i < 3; i++) order.push(q.pop()!.tenant);
    expect(order).toContain("light");
  });

  it("serves two backlogged tenants equal weighted tokens (bounded service gap)", () => {
    const q = new FairQueue<Item>({ weights: { input: 1, output: 2 } });
    // a sends long prompts, b short ones; both always backlogged.
    for (let i = 0; i < 2000; i++) {
      push(q, item("a", i, 1000));
      push(q, item("b", i, 50));
    }
    const served = { a: 0, b: 0 };
    let maxGap = 0;
    for (let i = 0; i < 1500; i++) {
      const it = q.pop()!;
      served[it.tenant as "a" | "b"] += it.tokens;
      // Output usage learned at completion: 10 tokens each.
      q.charge(it.tenant, 0, 10);
      served[it.tenant as "a" | "b"] += 20;
      maxGap = Math.max(maxGap, Math.abs(served.a - served.b));
    }
    // VTC bound with one request in flight: 2·(w_in·L_in + w_out·L_out) = 2·(1000 + 20).
    expect(maxGap).toBeLessThanOrEqual(2 * (1000 + 20));
    expect(served.a).toBeGreaterThan(90_000);
    expect(served.b).toBeGreaterThan(90_000);
    expect(q.sizeOf("a") + q.sizeOf("b")).toBe(2500);
  });

  it("lifts a returning tenant's counter so idling banks no credit", () => {
    const q = new FairQueue<Item>();
    push(q, item("a", 0, 10));
    q.pop();
    // b works alone for a long time.
    for (let i = 0; i < 100; i++) push(q, item("b", i, 100));
    for (let i = 0; i < 50; i++) q.pop();
    expect(q.counter("b")).toBe(5010); // lifted to a's 10 when it arrived, then 50 × 100
    // a returns: lifted to b's counter (the smallest backlogged), not left at 10.
    push(q, item("a", 1, 100));
    expect(q.counter("a")).toBe(5010);
    // Lifted to b's counter, a goes first at the tie: b has been served up to it, a has not.
    expect(q.peek()).toEqual(item("a", 1, 100));
    // So a and b alternate rather than a getting 49 in a row.
    const next = Array.from({ length: 4 }, () => q.pop()!.tenant);
    expect(next.filter((t) => t === "a")).toHaveLength(1);
  });

  it("lifts to the last departed counter when nobody is backlogged", () => {
    const q = new FairQueue<Item>();
    push(q, item("b", 0, 700));
    q.pop();
    push(q, item("a", 0, 1));
    expect(q.counter("a")).toBe(700);
  });

  it("charge reorders backlogged tenants", () => {
    const q = new FairQueue<Item>();
    push(q, item("a", 0, 1));
    push(q, item("b", 0, 1));
    q.charge("a", 0, 500); // a used a lot of output since
    expect(q.pop()!.tenant).toBe("b");
  });

  it("serves higher priority classes strictly first, VTC within a class", () => {
    const q = new FairQueue<Item>();
    for (let i = 0; i < 3; i++) push(q, item("free", i), 0);
    push(q, item("paid", 0), 1);
    push(q, item("paid2", 0), 1);
    push(q, item("paid", 1), 1);
    const order = Array.from({ length: 6 }, () => q.pop()!);
    expect(order.slice(0, 3).map((x) => x.tenant)).toEqual(["paid", "paid2", "paid"]);
    expect(order.slice(3).every((x) => x.tenant === "free")).toBe(true);
    expect(q.peek()).toBeUndefined();
  });

  it("re-queues at the front and removes by predicate", () => {
    const q = new FairQueue<Item>();
    for (let i = 0; i < 4; i++) push(q, item("a", i));
    q.push(item("a", 99), { tenantId: "a", front: true });
    expect(q.peek()?.n).toBe(99);
    const removed = q.remove((x) => x.n % 2 === 1);
    expect(removed.map((x) => x.n).sort()).toEqual([1, 3, 99]);
    expect(q.size).toBe(2);
    expect([q.pop()?.n, q.pop()?.n]).toEqual([0, 2]);
    expect(q.size).toBe(0);
  });

  it("takes a lone tenant's item from behind a backlog it is not lifted ahead of (takeLone)", () => {
    const q = new FairQueue<Item>();
    // "light" was served a moment ago: its counter is above the backlog's, so it sits behind it.
    push(q, item("light", 0, 500));
    q.pop();
    for (let i = 0; i < 5; i++) push(q, item("flood", i, 10));
    push(q, item("light", 1, 10));
    push(q, item("other", 0, 10));
    push(q, item("other", 1, 10));
    expect(q.peekTenant()).not.toBe("light");
    // Backlogged tenants ("flood", "other") are not lone; "light" is, and is charged as pop would.
    const seen: string[] = [];
    expect(
      q.takeLone((x) => {
        seen.push(x.tenant);
        return true;
      }),
    ).toEqual(item("light", 1, 10));
    expect(seen).toEqual(["light"]);
    expect(q.counter("light")).toBe(510);
    expect(q.size).toBe(7);
    expect(q.sizeOf("light")).toBe(0);
    // Refused by `accept`: it stays, and nothing else is lone.
    push(q, item("light", 2, 10));
    expect(q.takeLone(() => false)).toBeUndefined();
    expect(q.size).toBe(8);
    const order = Array.from({ length: 8 }, () => q.pop()!.tenant);
    expect(order.filter((t) => t === "light")).toEqual(["light"]);
    expect(q.pop()).toBeUndefined();
  });
});
