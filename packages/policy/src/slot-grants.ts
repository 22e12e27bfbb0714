/**
 * The fast path's arithmetic (slot leases): how many of a replica's free slots the
 * dispatching scheduler lends each gateway, so that a gateway can place a request itself
 * while nothing waits. Pure, shared by the scheduler and the simulator.
 *
 * A gateway's lease on a replica is `granted` slots: it may have that many fast-path requests
 * running there at once. The scheduler counts what a gateway may hold as `heldSlots`: the most
 * it granted in any version of the lease the gateway has not acknowledged yet (`ceiling`), or
 * what the gateway last reported running there, whichever is more. So a lease that shrinks
 * frees nothing until the gateway has read it, and `Σ held + placed ≤ capacity` always holds,
 * whatever the gateways do with their slots.
 */

export interface GatewaySlots {
  /** The lease's slots on this replica as written now. */
  granted: number;
  /** The most granted in a lease version the gateway has not acknowledged (≥ granted; = granted once acknowledged). */
  ceiling: number;
  /** Fast-path requests it reported running on this replica. */
  inUse: number;
  /** Its recent request rate on the deployment: its share's weight. */
  rate: number;
}

/** Slots the scheduler must count as taken by one gateway's lease on one replica. */
export function heldSlots(s: Pick<GatewaySlots, "ceiling" | "inUse">): number {
  return Math.max(s.inUse, s.ceiling);
}

/**
 * The new `granted` of each gateway on one replica.
 *
 * `free`: the replica's slots not taken by anything but these leases (capacity − reserved
 * slots − requests the queue placed − running requests nobody accounts for). `drain`: entries
 * wait in the queue: every lease lends nothing (what a gateway runs stays counted until it
 * ends), so everything that waits goes through the fair queue and each slot that frees goes to it.
 *
 * Otherwise the slots nobody uses are shared out by rate (each gateway at least one while
 * there are enough), on top of what each has running. A lease grows only into slots no lease
 * holds (counting unacknowledged ceilings), so a shrink of one gateway's lease is lent to
 * another only after the first has read it.
 */
export function planGrants(free: number, gateways: readonly GatewaySlots[], drain: boolean): number[] {
  const n = gateways.length;
  if (n === 0) return [];
  if (drain) return gateways.map(() => 0);
  let used = 0;
  let held = 0;
  for (const g of gateways) {
    used += g.inUse;
    held += heldSlots(g);
  }
  const ideal = gateways.map((g) => g.inUse);
  const spare = Math.max(0, free - used);
  if (spare > 0) {
    // One each first (in rate order) while there are enough, then the rest by rate (largest remainder).
    const order = gateways.map((_, i) => i).sort((a, b) => gateways[b]!.rate - gateways[a]!.rate || a - b);
    let left = spare;
    if (left >= n) {
      for (const i of order) ideal[i]!++;
      left -= n;
    }
    const total = gateways.reduce((s, g) => s + Math.max(g.rate, 0), 0);
    const shares = order.map((i) => ({ i, x: total > 0 ? (left * Math.max(gateways[i]!.rate, 0)) / total : left / n }));
    let given = 0;
    for (const s of shares) {
      const whole = Math.floor(s.x);
      ideal[s.i]! += whole;
      given += whole;
    }
    shares.sort((a, b) => b.x - Math.floor(b.x) - (a.x - Math.floor(a.x)));
    for (let j = 0; given < left && j < shares.length; j++, given++) ideal[shares[j]!.i]!++;
  }
  // Grow only into slots no lease holds; shrinking is always allowed (it frees nothing until acknowledged).
  let budget = Math.max(0, free - held);
  return gateways.map((g, i) => {
    const want = ideal[i]!;
    const h = heldSlots(g);
    if (want <= h) return want;
    const k = Math.min(want, h + budget);
    budget -= k - h;
    return k;
  });
}
