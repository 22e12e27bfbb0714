/** A binary min-heap of (time, payload int) events in typed arrays: no allocation per event. */
export class EventHeap {
  private times: Float64Array;
  private vals: Int32Array;
  private n = 0;
  /** Ties are broken by insertion order so runs are deterministic. */
  private seqs: Float64Array;
  private seq = 0;

  constructor(capacity = 1024) {
    this.times = new Float64Array(capacity);
    this.vals = new Int32Array(capacity);
    this.seqs = new Float64Array(capacity);
  }

  get size(): number {
    return this.n;
  }

  /** Time of the earliest event (Infinity when empty). */
  peekTime(): number {
    return this.n > 0 ? this.times[0]! : Number.POSITIVE_INFINITY;
  }

  push(time: number, val: number): void {
    if (this.n === this.times.length) this.grow();
    const seq = this.seq++;
    let i = this.n++;
    const t = this.times;
    const v = this.vals;
    const s = this.seqs;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (t[p]! < time || (t[p] === time && s[p]! < seq)) break;
      t[i] = t[p]!;
      v[i] = v[p]!;
      s[i] = s[p]!;
      i = p;
    }
    t[i] = time;
    v[i] = val;
    s[i] = seq;
  }

  /** Removes the earliest event and returns its payload (call peekTime first for its time). */
  pop(): number {
    const t = this.times;
    const v = this.vals;
    const s = this.seqs;
    const top = v[0]!;
    const n = --this.n;
    if (n === 0) return top;
    const time = t[n]!;
    const val = v[n]!;
    const seq = s[n]!;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      let c = l;
      const r = l + 1;
      if (r < n && (t[r]! < t[l]! || (t[r] === t[l] && s[r]! < s[l]!))) c = r;
      if (t[c]! > time || (t[c] === time && s[c]! > seq)) break;
      t[i] = t[c]!;
      v[i] = v[c]!;
      s[i] = s[c]!;
      i = c;
    }
    t[i] = time;
    v[i] = val;
    s[i] = seq;
    return top;
  }

  private grow(): void {
    const cap = this.times.length * 2;
    const t = new Float64Array(cap);
    t.set(this.times);
    const v = new Int32Array(cap);
    v.set(this.vals);
    const s = new Float64Array(cap);
    s.set(this.seqs);
    this.times = t;
    this.vals = v;
    this.seqs = s;
  }
}
