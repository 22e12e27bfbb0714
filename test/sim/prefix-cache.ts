/**
 * A replica's prefix (KV block) cache, LRU, capacity in blocks.
 *
 * Blocks are grouped by what determines their content: a system prompt's blocks (key: the
 * prefix id), a conversation's blocks after its system prompt (key: the conversation), or a
 * one-off request's own blocks. Because block i's content is fixed by its owner, a group is
 * "the first `blocks` blocks of that owner", and the cache keeps one entry per group, whose
 * length only grows, touched as a whole. Evicting a whole group at once (least recently used
 * first) is coarser than vLLM's per-block LRU but behaves alike: hot system prompts stay,
 * old conversations and one-off prompts go. This keeps the simulator to O(1) map operations
 * per request instead of one per block.
 */
export class PrefixCache {
  private readonly map = new Map<number, number>();
  private used = 0;
  constructor(readonly capacityBlocks: number) {}

  /** Cached blocks of `key` (0 when absent). Does not touch. */
  get(key: number): number {
    return this.map.get(key) ?? 0;
  }

  /** Make sure the first `blocks` blocks of `key` are cached; mark it most recently used. */
  touch(key: number, blocks: number): void {
    if (blocks <= 0) return;
    const old = this.map.get(key);
    if (old !== undefined) {
      this.map.delete(key);
      if (blocks < old) blocks = old;
      this.used -= old;
    }
    if (blocks > this.capacityBlocks) blocks = this.capacityBlocks;
    this.used += blocks;
    this.map.set(key, blocks);
    if (this.used > this.capacityBlocks) this.evict(key);
  }

  get usedBlocks(): number {
    return this.used;
  }

  private evict(keep: number): void {
    for (const [k, b] of this.map) {
      if (this.used <= this.capacityBlocks) return;
      if (k === keep) continue;
      this.map.delete(k);
      this.used -= b;
    }
  }
}
