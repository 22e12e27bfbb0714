/**
 * Cumulative hashes of a prompt's leading blocks, for prefix-affinity placement.
 *
 * hashes[i] covers characters [0, (i+1)·blockChars), so two prompts share hashes[i] exactly
 * when (barring collisions) they share their first i+1 blocks. Only whole blocks are hashed
 * (an engine caches whole KV blocks too), at most `maxBlocks` of them, so the cost is bounded
 * by blockChars·maxBlocks character reads however long the prompt is.
 *
 * Two independent 32-bit lanes (FNV-1a and a murmur-style multiply-xorshift) give a 64-bit
 * key, rendered base-36: collisions among the few hundred thousand hashes a scheduler
 * remembers are then negligible (a 32-bit hash alone would collide around 2^16 entries).
 */
export const DEFAULT_BLOCK_CHARS = 512; // ≈ 128 tokens of English text
export const DEFAULT_MAX_BLOCKS = 64; // ≈ the first 8k tokens

export function prefixHashes(text: string, blockChars = DEFAULT_BLOCK_CHARS, maxBlocks = DEFAULT_MAX_BLOCKS): string[] {
  if (blockChars < 1 || maxBlocks < 1) return [];
  const blocks = Math.min(maxBlocks, Math.floor(text.length / blockChars));
  const out = new Array<string>(blocks);
  let h1 = 0x811c9dc5 | 0;
  let h2 = 0x9e3779b9 | 0;
  let i = 0;
  for (let b = 0; b < blocks; b++) {
    const end = i + blockChars;
    for (; i < end; i++) {
      const c = text.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 ^ c, 0x5bd1e995);
      h2 ^= h2 >>> 15;
    }
    out[b] = (h1 >>> 0).toString(36) + "." + (h2 >>> 0).toString(36);
  }
  return out;
}
