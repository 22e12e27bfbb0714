/**
 * A prefix cache of full 16-token blocks with LRU eviction, like vLLM's automatic prefix
 * caching: a block is identified by its tokens and everything before it, so a hit on block k
 * implies hits on blocks 0..k-1.
 */
export const BLOCK_SIZE = 16;

export interface PrefixCache {
  /** Looks the prompt up, inserts its blocks, and returns how many prompt tokens were cached. */
  lookupAndInsert(tokens: readonly number[]): number;
  readonly size: number;
}

export function createPrefixCache(capacityBlocks: number): PrefixCache {
  const blocks = new Map<string, true>();
  const touch = (key: string): void => {
    blocks.delete(key);
    blocks.set(key, true);
  };
  return {
    get size() {
      return blocks.size;
    },
    lookupAndInsert(tokens) {
      const fullBlocks = Math.floor(tokens.length / BLOCK_SIZE);
      // Two chained 32-bit hashes: each block's key covers its tokens and all blocks before it.
      let h1 = 0x811c9dc5;
      let h2 = 0x01234567;
      let cached = 0;
      let missed = false;
      for (let b = 0; b < fullBlocks; b++) {
        for (let i = b * BLOCK_SIZE; i < (b + 1) * BLOCK_SIZE; i++) {
          const t = tokens[i] ?? 0;
          h1 = Math.imul(h1 ^ t, 0x01000193);
          h2 = Math.imul(h2 ^ t, 0x5bd1e995) ^ (h2 >>> 15);
        }
        const key = `${(h1 >>> 0).toString(36)}.${(h2 >>> 0).toString(36)}`;
        if (!missed && blocks.has(key)) cached += BLOCK_SIZE;
        else missed = true;
        touch(key);
        if (blocks.size > capacityBlocks) {
          const oldest = blocks.keys().next();
          if (oldest.done !== true) blocks.delete(oldest.value);
        }
      }
      // vLLM always recomputes at least the last prompt token.
      return Math.min(cached, Math.max(0, tokens.length - 1));
    },
  };
}
