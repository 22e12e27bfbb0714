/**
 * A fair queue across tenants: Virtual Token Counters (VTC; Sheng et al., "Fairness in
 * Serving Large Language Models", OSDI '24), with strict priority classes in front.
 *
 * - Each tenant has a counter of the service it got, in weighted tokens:
 *   w_in·input + w_out·output. `pop` charges w_in·inputTokens of the item it returns;
 *   `charge` adds usage learned later (output tokens at completion, or a correction).
 * - Within a priority class, `pop` serves the backlogged tenant with the smallest counter
 *   (ties: the tenant lifted last, then the tenant that became backlogged first), FIFO within
 *   a tenant.
 * - A tenant that becomes backlogged again has its counter lifted to the smallest counter of
 *   the tenants backlogged in that class (or, if none is, to the counter of the last tenant
 *   that left it), so idling never banks credit (VTC Algorithm 2). Lifted, it goes ahead of
 *   the tenants at that counter: the scheduler may be unable to place their next request
 *   (they may not take reserved slots), and its own should not wait behind it.
 * - Classes are strict: a higher `priority` is always served before a lower one.
 *
 * Every operation is O(log tenants) (+ O(classes), a handful) except `remove`, which scans.
 */

export interface FairQueueWeights {
  /** Weight of an input (prompt) token. Default 1. */
  input: number;
  /** Weight of an output (generated) token. Default 2 (decode costs more per token). */
  output: number;
}

export interface FairQueueOptions {
  weights?: Partial<FairQueueWeights>;
}

export interface EnqueueMeta {
  tenantId: string;
  /** Higher first. Default 0. E.g. 1 for `service_tier: "priority"`. */
  priority?: number;
  /** Prompt tokens; w_in·inputTokens is charged to the tenant when the item is popped. Default 0. */
  inputTokens?: number;
  /** Put it at the head of its tenant's line (a request re-queued after a failed attempt). */
  front?: boolean;
}

interface Tenant {
  id: string;
  counter: number;
  /** Its lanes, one per priority class it ever used. */
  lanes: Lane<unknown>[];
}

interface Lane<T> {
  tenant: Tenant;
  cls: PriorityClass<T>;
  items: T[];
  costs: number[];
  head: number;
  /** Position in cls.heap, or -1 when not backlogged. */
  pos: number;
  /** When it became backlogged (a sequence number; negated when lifted), for tie-breaking between tenants. */
  since: number;
}

interface PriorityClass<T> {
  priority: number;
  heap: Lane<T>[];
  /** Counter of the last tenant that left this class's backlog. */
  floor: number;
  lanes: Map<string, Lane<T>>;
}

export class FairQueue<T> {
  readonly weights: FairQueueWeights;
  private readonly tenants = new Map<string, Tenant>();
  /** Sorted by priority, highest first. */
  private readonly classes: PriorityClass<T>[] = [];
  private total = 0;
  private seq = 0;

  constructor(options: FairQueueOptions = {}) {
    this.weights = { input: options.weights?.input ?? 1, output: options.weights?.output ?? 2 };
  }

  get size(): number {
    return this.total;
  }

  sizeOf(tenantId: string): number {
    const t = this.tenants.get(tenantId);
    if (t === undefined) return 0;
    let n = 0;
    for (const lane of t.lanes) n += lane.items.length - lane.head;
    return n;
  }

  /** The tenant's virtual token counter (weighted tokens served, after lifts). */
  counter(tenantId: string): number {
    return this.tenants.get(tenantId)?.counter ?? 0;
  }

  push(item: T, meta: EnqueueMeta): void {
    const tenant = this.tenant(meta.tenantId);
    const cls = this.cls(meta.priority ?? 0);
    let lane = cls.lanes.get(meta.tenantId);
    if (lane === undefined) {
      lane = { tenant, cls, items: [], costs: [], head: 0, pos: -1, since: 0 };
      cls.lanes.set(meta.tenantId, lane);
      tenant.lanes.push(lane as Lane<unknown>);
    }
    const cost = meta.inputTokens ?? 0;
    if (meta.front === true && lane.head > 0) {
      lane.head--;
      lane.items[lane.head] = item;
      lane.costs[lane.head] = cost;
    } else if (meta.front === true) {
      lane.items.unshift(item);
      lane.costs.unshift(cost);
    } else {
      lane.items.push(item);
      lane.costs.push(cost);
    }
    this.total++;
    if (lane.pos < 0) {
      // Becoming backlogged: lift the counter so idle time banks no credit.
      const floor = cls.heap.length > 0 ? cls.heap[0]!.tenant.counter : cls.floor;
      lane.since = this.seq++;
      if (tenant.counter < floor) {
        this.setCounter(tenant, floor);
        // It goes ahead of every tenant at that counter (they were served up to it; it was not),
        // so a light tenant's request does not wait behind a flood that cannot be placed.
        lane.since = -lane.since - 1;
      }
      lane.pos = cls.heap.length;
      cls.heap.push(lane);
      siftUp(cls.heap, lane.pos);
    }
  }

  peek(): T | undefined {
    for (const cls of this.classes) {
      const lane = cls.heap[0];
      if (lane !== undefined) return lane.items[lane.head];
    }
    return undefined;
  }

  /** The tenant whose item `pop` would return next. */
  peekTenant(): string | undefined {
    for (const cls of this.classes) {
      const lane = cls.heap[0];
      if (lane !== undefined) return lane.tenant.id;
    }
    return undefined;
  }

  pop(): T | undefined {
    for (const cls of this.classes) {
      const lane = cls.heap[0];
      if (lane === undefined) continue;
      const item = lane.items[lane.head]!;
      const cost = lane.costs[lane.head]!;
      lane.head++;
      this.total--;
      lane.tenant.counter += this.weights.input * cost;
      if (lane.head === lane.items.length) {
        lane.items.length = 0;
        lane.costs.length = 0;
        lane.head = 0;
        cls.floor = lane.tenant.counter;
        removeAt(cls.heap, 0);
        lane.pos = -1;
      } else {
        if (lane.head > 1024 && lane.head * 2 > lane.items.length) {
          lane.items.splice(0, lane.head);
          lane.costs.splice(0, lane.head);
          lane.head = 0;
        }
        siftDown(cls.heap, 0);
      }
      // Lanes of the same tenant in other classes moved too.
      if (lane.tenant.lanes.length > 1) this.resift(lane.tenant);
      return item;
    }
    return undefined;
  }

  /**
   * The first item, in the order `pop` would serve them, of a tenant that has nothing else
   * queued and for which `accept` returns true, taken (and charged) as `pop` would take it.
   * The scheduler calls it when the head of the queue cannot be placed: a backlogged tenant
   * may not take a replica's reserved slots, a tenant with a single request may, and it must
   * not wait behind the backlog for them (its counter may be just above the backlog's when a
   * lift did not apply: it was served a moment ago). O(tenants in the queue).
   */
  takeLone(accept: (item: T) => boolean): T | undefined {
    const lone: Lane<T>[] = [];
    for (const cls of this.classes) {
      const start = lone.length;
      for (const lane of cls.heap) if (lane.items.length - lane.head === 1 && this.sizeOf(lane.tenant.id) === 1) lone.push(lane);
      // Classes stay strict; within one, the fair order.
      const mine = lone.splice(start).sort((a, b) => (before(a as Lane<unknown>, b as Lane<unknown>) ? -1 : 1));
      lone.push(...mine);
    }
    for (const lane of lone) {
      const item = lane.items[lane.head]!;
      if (!accept(item)) continue;
      const cost = lane.costs[lane.head]!;
      lane.items.length = 0;
      lane.costs.length = 0;
      lane.head = 0;
      this.total--;
      lane.tenant.counter += this.weights.input * cost;
      lane.cls.floor = lane.tenant.counter;
      removeAt(lane.cls.heap, lane.pos);
      lane.pos = -1;
      return item;
    }
    return undefined;
  }

  /** Add usage learned after dispatch (e.g. output tokens at completion). Negative amounts refund. */
  charge(tenantId: string, inputTokens: number, outputTokens: number): void {
    const tenant = this.tenants.get(tenantId);
    if (tenant === undefined) return;
    this.setCounter(tenant, tenant.counter + this.weights.input * inputTokens + this.weights.output * outputTokens);
  }

  /** Remove every queued item matching `predicate` (e.g. cancelled requests); returns them. O(n). */
  remove(predicate: (item: T) => boolean): T[] {
    const removed: T[] = [];
    for (const cls of this.classes) {
      for (const lane of cls.lanes.values()) {
        if (lane.head === lane.items.length) continue;
        const items: T[] = [];
        const costs: number[] = [];
        for (let i = lane.head; i < lane.items.length; i++) {
          const it = lane.items[i]!;
          if (predicate(it)) removed.push(it);
          else {
            items.push(it);
            costs.push(lane.costs[i]!);
          }
        }
        if (items.length === lane.items.length - lane.head) continue;
        lane.items = items;
        lane.costs = costs;
        lane.head = 0;
        if (items.length === 0 && lane.pos >= 0) {
          cls.floor = Math.max(cls.floor, lane.tenant.counter);
          removeAt(cls.heap, lane.pos);
          lane.pos = -1;
        }
      }
    }
    this.total -= removed.length;
    return removed;
  }

  private tenant(id: string): Tenant {
    let t = this.tenants.get(id);
    if (t === undefined) {
      t = { id, counter: 0, lanes: [] };
      this.tenants.set(id, t);
    }
    return t;
  }

  private cls(priority: number): PriorityClass<T> {
    for (const c of this.classes) if (c.priority === priority) return c;
    const c: PriorityClass<T> = { priority, heap: [], floor: 0, lanes: new Map() };
    let i = 0;
    while (i < this.classes.length && this.classes[i]!.priority > priority) i++;
    this.classes.splice(i, 0, c);
    return c;
  }

  private setCounter(tenant: Tenant, value: number): void {
    tenant.counter = value;
    this.resift(tenant);
  }

  private resift(tenant: Tenant): void {
    for (const lane of tenant.lanes) {
      if (lane.pos < 0) continue;
      const heap = lane.cls.heap as Lane<unknown>[];
      siftDown(heap, siftUp(heap, lane.pos));
    }
  }
}

function before(a: Lane<unknown>, b: Lane<unknown>): boolean {
  const ca = a.tenant.counter;
  const cb = b.tenant.counter;
  return ca < cb || (ca === cb && a.since < b.since);
}

function siftUp<T>(heap: Lane<T>[], pos: number): number {
  const lane = heap[pos]!;
  while (pos > 0) {
    const parent = (pos - 1) >> 1;
    const p = heap[parent]!;
    if (!before(lane as Lane<unknown>, p as Lane<unknown>)) break;
    heap[pos] = p;
    p.pos = pos;
    pos = parent;
  }
  heap[pos] = lane;
  lane.pos = pos;
  return pos;
}

function siftDown<T>(heap: Lane<T>[], pos: number): number {
  const n = heap.length;
  const lane = heap[pos];
  if (lane === undefined) return pos;
  for (;;) {
    const l = 2 * pos + 1;
    if (l >= n) break;
    const r = l + 1;
    let c = l;
    if (r < n && before(heap[r] as Lane<unknown>, heap[l] as Lane<unknown>)) c = r;
    const child = heap[c]!;
    if (!before(child as Lane<unknown>, lane as Lane<unknown>)) break;
    heap[pos] = child;
    child.pos = pos;
    pos = c;
  }
  heap[pos] = lane;
  lane.pos = pos;
  return pos;
}

function removeAt<T>(heap: Lane<T>[], pos: number): void {
  const last = heap.pop()!;
  if (pos === heap.length) return;
  heap[pos] = last;
  last.pos = pos;
  siftDown(heap, siftUp(heap, pos));
}
