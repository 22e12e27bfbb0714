/**
 * What prefix-affinity remembers: block hash → the replicas that recently served it (most
 * recent first, at most `perPrefix`), as a bounded LRU with a TTL.
 *
 * A doubly linked list over preallocated slots (typed arrays) plus one Map from hash to slot:
 * a touch relinks a slot instead of deleting and re-inserting the Map key, and eviction takes
 * the list's tail. (Using a Map's insertion order as the LRU — delete + set, then
 * `keys().next()` to evict — degrades badly in V8: deleted entries stay as holes at the front
 * of the table, so each eviction scans them.)
 */
export class PrefixIndex {
  private readonly slotOf = new Map<string, number>();
  private readonly keys: (string | undefined)[];
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  /** Replica ids of slot s at [s·K, s·K + count[s]), most recent first. */
  private readonly ids: (string | undefined)[];
  private readonly at: Float64Array;
  private readonly count: Uint8Array;
  private head = -1; // most recently used
  private tail = -1; // least recently used
  private free: number[] = [];
  private used = 0;

  constructor(
    readonly capacity: number,
    readonly perPrefix: number,
    readonly ttlMs: number,
  ) {
    const K = perPrefix;
    // Allocated packed (Array.from), not `new Array(n)`: a large holey array may be kept in
    // V8's slow dictionary mode.
    this.keys = Array.from({ length: capacity }, () => undefined);
    this.prev = new Int32Array(capacity);
    this.next = new Int32Array(capacity);
    this.ids = Array.from({ length: capacity * K }, () => undefined);
    this.at = new Float64Array(capacity * K);
    this.count = new Uint8Array(capacity);
  }

  get size(): number {
    return this.slotOf.size;
  }

  /** The slot for `hash` if a claim on it is still live (within the TTL), else -1. */
  find(hash: string, now: number): number {
    const s = this.slotOf.get(hash);
    if (s === undefined) return -1;
    if (now - this.at[s * this.perPrefix]! > this.ttlMs) {
      this.drop(s);
      return -1;
    }
    return s;
  }

  /** How many replicas slot s remembers, and the k-th (most recent first) with its time. */
  countAt(s: number): number {
    return this.count[s]!;
  }
  idAt(s: number, k: number): string {
    return this.ids[s * this.perPrefix + k]!;
  }
  timeAt(s: number, k: number): number {
    return this.at[s * this.perPrefix + k]!;
  }

  /** Remember that `id` served `hash` at `now` (moves it to the front of the hash's replicas). */
  record(hash: string, id: string, now: number): void {
    const K = this.perPrefix;
    let s = this.slotOf.get(hash);
    if (s === undefined) {
      s = this.alloc();
      this.slotOf.set(hash, s);
      this.keys[s] = hash;
      this.ids[s * K] = id;
      this.at[s * K] = now;
      this.count[s] = 1;
      this.linkFront(s);
      return;
    }
    const base = s * K;
    const n = this.count[s]!;
    let j = 0;
    while (j < n && this.ids[base + j] !== id) j++;
    if (j === n) {
      if (n < K) this.count[s] = n + 1;
      else j = K - 1; // drop the oldest
    }
    for (let k = j; k > 0; k--) {
      this.ids[base + k] = this.ids[base + k - 1];
      this.at[base + k] = this.at[base + k - 1]!;
    }
    this.ids[base] = id;
    this.at[base] = now;
    if (this.head !== s) {
      this.unlink(s);
      this.linkFront(s);
    }
  }

  /** Remove `id` from every hash (a replica is gone). O(capacity); rare. */
  forget(id: string): void {
    const K = this.perPrefix;
    for (const s of this.slotOf.values()) {
      const base = s * K;
      const n = this.count[s]!;
      let w = 0;
      for (let k = 0; k < n; k++) {
        const v = this.ids[base + k];
        if (v === id) continue;
        this.ids[base + w] = v;
        this.at[base + w] = this.at[base + k]!;
        w++;
      }
      for (let k = w; k < n; k++) this.ids[base + k] = undefined;
      this.count[s] = w;
      if (w === 0) this.drop(s);
    }
  }

  private alloc(): number {
    if (this.free.length > 0) return this.free.pop()!;
    if (this.used < this.capacity) return this.used++;
    const s = this.tail;
    this.drop(s);
    return this.free.pop()!;
  }

  private drop(s: number): void {
    const key = this.keys[s];
    if (key !== undefined) this.slotOf.delete(key);
    this.keys[s] = undefined;
    const base = s * this.perPrefix;
    for (let k = 0; k < this.count[s]!; k++) this.ids[base + k] = undefined;
    this.count[s] = 0;
    this.unlink(s);
    this.free.push(s);
  }

  private unlink(s: number): void {
    const p = this.prev[s]!;
    const n = this.next[s]!;
    if (p >= 0) this.next[p] = n;
    else if (this.head === s) this.head = n;
    if (n >= 0) this.prev[n] = p;
    else if (this.tail === s) this.tail = p;
    this.prev[s] = -1;
    this.next[s] = -1;
  }

  private linkFront(s: number): void {
    this.prev[s] = -1;
    this.next[s] = this.head;
    if (this.head >= 0) this.prev[this.head] = s;
    this.head = s;
    if (this.tail < 0) this.tail = s;
  }
}
