/**
 * A byte-pair-encoding model in a few typed arrays, for counting tokens exactly as
 * @huggingface/tokenizers' `BPE` model does (0.2: lowest merge rank first, leftmost on a tie;
 * `ignore_merges`; a symbol outside the vocabulary becomes the unknown token or nothing).
 *
 * The library keeps Llama 3's 128k-entry vocabulary and 280k merges as Maps of strings
 * (≈48 MB of live heap, and loading it grows the heap to ≈150 MB, which V8 keeps). Here they
 * are ≈10 MB of typed arrays outside the JS heap: the vocabulary as UTF-16 units with an
 * open-addressing table, the merges as (left id, right id) → (rank, merged id).
 *
 * `fromModel` returns null for a model this does not reproduce (byte fallback, word suffixes,
 * fused unknowns, or a merge whose parts or result are not in the vocabulary): it is then
 * counted with the library as before.
 */

/** The arrays, as one object a worker can hand over (every array its own transferable buffer). */
export interface BpeTable {
  /** UTF-16 units of every vocabulary entry, one after another. */
  units: Uint16Array;
  /** Entry i is `units[start[i] .. start[i + 1])`. */
  start: Int32Array;
  ids: Int32Array;
  /** Open addressing: entry index + 1, 0 empty. */
  slots: Int32Array;
  /** Id of each single-unit symbol (the byte-level alphabet), -1 none. */
  single: Int32Array;
  /** Merge table, open addressing on (left, right): left -1 empty. */
  left: Int32Array;
  right: Int32Array;
  rank: Int32Array;
  merged: Int32Array;
  ignoreMerges: boolean;
  /** Tokens a symbol outside the vocabulary becomes: 1 (unknown token) or 0 (dropped). */
  unknownCounts: 0 | 1;
}

/** What the library's BPE model exposes (0.2), read once. */
interface LibraryBpe {
  tokens_to_ids?: unknown;
  bpe_ranks?: unknown;
  merges?: unknown;
  byte_fallback?: boolean;
  end_of_word_suffix?: string | null;
  continuing_subword_suffix?: string | null;
  fuse_unk?: boolean;
  ignore_merges?: boolean;
  unk_token?: string | null;
}

function pow2Above(n: number): number {
  let c = 16;
  while (c < n) c *= 2;
  return c;
}

function hashUnits(s: string, from: number, to: number): number {
  let h = 0x811c9dc5;
  for (let i = from; i < to; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function hashPair(a: number, b: number): number {
  return (Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca77)) >>> 0;
}

/** The table for the library's model (after the Tokenizer added its added tokens to it), or null. */
export function fromModel(model: unknown): BpeTable | null {
  const m = model as LibraryBpe;
  if (!(m.tokens_to_ids instanceof Map) || !(m.bpe_ranks instanceof Map) || !Array.isArray(m.merges)) return null;
  if (m.byte_fallback || m.end_of_word_suffix || m.continuing_subword_suffix) return null;
  const unknown = m.unk_token ?? null;
  if (m.fuse_unk && unknown !== null) return null;
  const vocab = m.tokens_to_ids as Map<string, number>;
  let unitCount = 0;
  for (const k of vocab.keys()) unitCount += k.length;
  const n = vocab.size;
  const units = new Uint16Array(unitCount);
  const start = new Int32Array(n + 1);
  const ids = new Int32Array(n);
  const slots = new Int32Array(pow2Above(Math.ceil(n / 0.6)));
  const single = new Int32Array(65536).fill(-1);
  const mask = slots.length - 1;
  let e = 0;
  let u = 0;
  // Merges are keyed by ids: two strings with one id (an added token over a vocabulary entry) would be one symbol here.
  const seen = new Set<number>();
  for (const [k, id] of vocab) {
    if (seen.has(id)) return null;
    seen.add(id);
    start[e] = u;
    for (let i = 0; i < k.length; i++) units[u++] = k.charCodeAt(i);
    ids[e] = id;
    if (k.length === 1) single[k.charCodeAt(0)] = id;
    let s = hashUnits(k, 0, k.length) & mask;
    while (slots[s] !== 0) s = (s + 1) & mask;
    slots[s] = e + 1;
    e++;
  }
  start[n] = u;
  // The rank of a pair is the library's: `new Map(merges.map((x, i) => [key, i]))`, so a repeated pair keeps its last index.
  const merges = m.merges as [string, string][];
  const cap = pow2Above(Math.ceil(merges.length / 0.6));
  const left = new Int32Array(cap).fill(-1);
  const right = new Int32Array(cap);
  const rank = new Int32Array(cap);
  const merged = new Int32Array(cap);
  const mmask = cap - 1;
  for (let r = 0; r < merges.length; r++) {
    const [a, b] = merges[r]!;
    const ia = vocab.get(a);
    const ib = vocab.get(b);
    const im = vocab.get(a + b);
    if (ia === undefined || ib === undefined || im === undefined) return null;
    let s = hashPair(ia, ib) & mmask;
    while (left[s] !== -1 && !(left[s] === ia && right[s] === ib)) s = (s + 1) & mmask;
    left[s] = ia;
    right[s] = ib;
    rank[s] = r;
    merged[s] = im;
  }
  return { units, start, ids, slots, single, left, right, rank, merged, ignoreMerges: m.ignore_merges ?? false, unknownCounts: unknown === null ? 0 : 1 };
}

/** The buffers to transfer when a worker hands a table over. */
export function buffersOf(t: BpeTable): ArrayBuffer[] {
  return [t.units, t.start, t.ids, t.slots, t.single, t.left, t.right, t.rank, t.merged].map((a) => a.buffer as ArrayBuffer);
}

/** Counts the tokens of pre-tokenized words with a table. */
export class BpeCounter {
  private sym = new Int32Array(256);
  private next = new Int32Array(256);
  private prev = new Int32Array(256);
  private pairRank = new Int32Array(256);
  private pairMerged = new Int32Array(256);

  constructor(private readonly t: BpeTable) {}

  /** The id of `s[from, to)`, or -1. */
  private idOf(s: string, from: number, to: number): number {
    const { slots, start, units, ids } = this.t;
    const mask = slots.length - 1;
    const len = to - from;
    for (let p = hashUnits(s, from, to) & mask; ; p = (p + 1) & mask) {
      const e = slots[p]! - 1;
      if (e < 0) return -1;
      const o = start[e]!;
      if (start[e + 1]! - o !== len) continue;
      let i = 0;
      while (i < len && units[o + i] === s.charCodeAt(from + i)) i++;
      if (i === len) return ids[e]!;
    }
  }

  /** Sets `pairRank[i]` / `pairMerged[i]` for the pair (sym[i], sym[j]); rank -1: no merge. */
  private pair(i: number, j: number): void {
    const a = this.sym[i]!;
    const b = this.sym[j]!;
    this.pairRank[i] = -1;
    if (a < 0 || b < 0) return;
    const { left, right, rank, merged } = this.t;
    const mask = left.length - 1;
    for (let p = hashPair(a, b) & mask; left[p] !== -1; p = (p + 1) & mask) {
      if (left[p] === a && right[p] === b) {
        this.pairRank[i] = rank[p]!;
        this.pairMerged[i] = merged[p]!;
        return;
      }
    }
  }

  private grow(n: number): void {
    if (this.sym.length >= n) return;
    const c = pow2Above(n);
    this.sym = new Int32Array(c);
    this.next = new Int32Array(c);
    this.prev = new Int32Array(c);
    this.pairRank = new Int32Array(c);
    this.pairMerged = new Int32Array(c);
  }

  /** Tokens of one word, as the library's `BPE.encode([word])` makes them. */
  word(w: string): number {
    if (w.length === 0) return 0;
    if (this.t.ignoreMerges && this.idOf(w, 0, w.length) >= 0) return 1;
    this.grow(w.length);
    const { sym, next, prev, pairRank, pairMerged } = this;
    const single = this.t.single;
    // One symbol per code point (the library splits with Array.from).
    let n = 0;
    for (let i = 0; i < w.length; i++) {
      const c = w.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < w.length) {
        const d = w.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          sym[n++] = this.idOf(w, i, i + 2);
          i++;
          continue;
        }
      }
      sym[n++] = single[c]!;
    }
    for (let i = 0; i < n; i++) {
      next[i] = i + 1;
      prev[i] = i - 1;
    }
    for (let i = 0; i + 1 < n; i++) this.pair(i, i + 1);
    if (n > 0) pairRank[n - 1] = -1;
    let live = n;
    // Merge the lowest-ranked pair, leftmost first, until none is left (symbols stay in order in the list).
    for (;;) {
      let best = -1;
      let bestRank = 0x7fffffff;
      for (let i = 0; i < n; i = next[i]!) {
        const r = pairRank[i]!;
        if (r >= 0 && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const j = next[best]!;
      sym[best] = pairMerged[best]!;
      next[best] = next[j]!;
      live--;
      if (next[best]! < n) {
        this.pair(best, next[best]!);
        prev[next[best]!] = best;
      } else pairRank[best] = -1;
      // The pair ending at `best` changed too.
      if (prev[best]! >= 0) this.pair(prev[best]!, best);
    }
    if (this.t.unknownCounts === 1) return live;
    let known = 0;
    for (let i = 0; i < n; i = next[i]!) if (sym[i]! >= 0) known++;
    return known;
  }
}
