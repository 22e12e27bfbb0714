/**
 * The service gap VTC bounds (Sheng et al., OSDI '24, §4).
 *
 * W_f(t1, t2) is the service tenant f received in [t1, t2), in weighted tokens:
 *   w_in · (prompt tokens of f's requests dispatched in [t1, t2))
 *   + w_out · (output tokens of f's requests completed in [t1, t2)),
 * i.e. exactly what the fair queue charges (input at dispatch, output when usage is known).
 * A tenant is backlogged while it has requests in the central queue.
 *
 *   max_service_gap = max over tenants f ≠ g and windows [t1, t2) during which both are
 *                     continuously backlogged of |W_f(t1, t2) − W_g(t1, t2)|.
 *
 * For one pair over one joint-backlog interval, with D(t) = W_f(0, t) − W_g(0, t), the max over
 * windows inside it of |D(t2) − D(t1)| is max D − min D over the interval, so the tracker keeps
 * the running min and max of D per pair while both are backlogged: O(tenants) per event.
 */
export class ServiceGapTracker {
  private readonly served: Float64Array;
  private readonly backlogged: Uint8Array;
  private readonly lo: Float64Array;
  private readonly hi: Float64Array;
  private readonly active: number[] = [];
  maxGap = 0;

  constructor(private readonly tenants: number) {
    this.served = new Float64Array(tenants);
    this.backlogged = new Uint8Array(tenants);
    this.lo = new Float64Array(tenants * tenants);
    this.hi = new Float64Array(tenants * tenants);
  }

  start(f: number): void {
    if (this.backlogged[f] === 1) return;
    this.backlogged[f] = 1;
    for (const g of this.active) {
      const d = this.diff(f, g);
      const k = this.key(f, g);
      this.lo[k] = d;
      this.hi[k] = d;
    }
    this.active.push(f);
  }

  end(f: number): void {
    if (this.backlogged[f] === 0) return;
    this.backlogged[f] = 0;
    const i = this.active.indexOf(f);
    this.active.splice(i, 1);
  }

  serve(f: number, amount: number): void {
    this.served[f]! += amount;
    if (this.backlogged[f] === 0) return;
    for (const g of this.active) {
      if (g === f) continue;
      const k = this.key(f, g);
      const d = this.diff(f, g);
      if (d < this.lo[k]!) this.lo[k] = d;
      if (d > this.hi[k]!) this.hi[k] = d;
      const gap = this.hi[k]! - this.lo[k]!;
      if (gap > this.maxGap) this.maxGap = gap;
    }
  }

  /** Oriented so that key(f, g) and key(g, f) agree: D = served[min] − served[max]. */
  private key(f: number, g: number): number {
    return f < g ? f * this.tenants + g : g * this.tenants + f;
  }
  private diff(f: number, g: number): number {
    return f < g ? this.served[f]! - this.served[g]! : this.served[g]! - this.served[f]!;
  }
}
