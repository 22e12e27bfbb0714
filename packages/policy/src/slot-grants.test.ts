import { describe, expect, test } from "vitest";
import { type GatewaySlots, heldSlots, planGrants } from "./slot-grants.ts";

const gw = (s: Partial<GatewaySlots> = {}): GatewaySlots => ({ granted: 0, ceiling: 0, inUse: 0, rate: 1, ...s });
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

describe("planGrants", () => {
  test("shares the free slots by rate, at least one each while there are enough", () => {
    // One each, then the other 8 at 9:1 (7.2 and 0.8, the larger remainder rounding up).
    expect(planGrants(10, [gw({ rate: 9 }), gw({ rate: 1 })], false)).toEqual([8, 2]);
    expect(planGrants(3, [gw({ rate: 100 }), gw({ rate: 0 }), gw({ rate: 0 })], false)).toEqual([1, 1, 1]);
    expect(sum(planGrants(7, [gw({ rate: 1 }), gw({ rate: 1 }), gw({ rate: 1 })], false))).toBe(7);
  });

  test("lends nothing while entries wait (drain)", () => {
    expect(planGrants(10, [gw({ granted: 5, ceiling: 5, inUse: 3 }), gw({ granted: 5, ceiling: 5 })], true)).toEqual([0, 0]);
  });

  test("never lends more than is free, counting what unacknowledged leases may still hold", () => {
    // Gateway 0 was lent 8 and has not read its shrink yet: gateway 1 gets nothing of those 8 until it has.
    const before = [gw({ granted: 2, ceiling: 8, rate: 1 }), gw({ rate: 1 })];
    const ks = planGrants(8, before, false);
    const after = before.map((g, i) => ({ ...g, ceiling: Math.max(g.ceiling, ks[i]!), granted: ks[i]! }));
    expect(sum(after.map(heldSlots))).toBeLessThanOrEqual(8);
    expect(ks[1]).toBe(0);
    // Acknowledged: the slots it gave up go to the other.
    const acked = [gw({ granted: ks[0]!, ceiling: ks[0]!, rate: 1 }), gw({ rate: 1 })];
    expect(planGrants(8, acked, false)).toEqual([4, 4]);
  });

  test("keeps what a gateway runs and adds no slot when none is free", () => {
    expect(planGrants(4, [gw({ granted: 4, ceiling: 4, inUse: 4 }), gw()], false)).toEqual([4, 0]);
    expect(planGrants(0, [gw({ granted: 2, ceiling: 2, inUse: 1 })], false)).toEqual([1]);
  });
});
