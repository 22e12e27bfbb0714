/**
 * The replica cost model, after vLLM's V1 engine with chunked prefill and prefix caching.
 *
 * A replica runs steps. Each step decodes one token for every running request past its
 * prefill, and prefills up to `maxBatchedTokens − decoding` prompt tokens of the requests
 * still in prefill, in arrival order (a request may be prefilled over several steps). A step
 * takes
 *
 *     step_ms = stepBaseMs + stepPerSeqMs · (sequences in the step) + prefillPerTokenMs · (prefill tokens)
 *
 * Only uncached prompt tokens are prefilled: each replica keeps a prefix cache of
 * `cacheBlocks` blocks of `blockTokens` tokens with LRU eviction. A request's first token
 * comes at the end of the step that finishes its prefill (TTFT = queue wait + the steps until
 * then); it then gets one token per step until it has `output_tokens`.
 *
 * Defaults are a Llama-3-8B-class model on one H100 (bf16): ~6 ms fixed per step, ~0.08 ms per
 * sequence (16 ms per step at batch 128, i.e. ~60 tok/s per stream), ~0.05 ms per prefill
 * token (20k prompt tokens/s), 2,048-token chunked-prefill budget, and a 16k-block × 16-token
 * (262k tokens) KV pool, roughly what is left of 80 GB after weights at 128 KiB/token.
 */
export interface CostModel {
  maxBatchSize: number;
  stepBaseMs: number;
  stepPerSeqMs: number;
  prefillPerTokenMs: number;
  maxBatchedTokens: number;
  blockTokens: number;
  cacheBlocks: number;
}

export const DEFAULT_COST: CostModel = {
  maxBatchSize: 128,
  stepBaseMs: 6,
  stepPerSeqMs: 0.08,
  prefillPerTokenMs: 0.05,
  maxBatchedTokens: 2048,
  blockTokens: 16,
  cacheBlocks: 16_384,
};

export function stepMs(m: CostModel, seqs: number, prefillTokens: number): number {
  return m.stepBaseMs + m.stepPerSeqMs * seqs + m.prefillPerTokenMs * prefillTokens;
}

/**
 * Requests per second one replica sustains with a full batch, for mean uncached prompt
 * length `prefill` and mean output `output`: each step ends ≈ B/output requests, and prefills
 * as many new prompts.
 */
export function capacityRps(m: CostModel, prefill: number, output: number): number {
  const perStep = m.maxBatchSize / output;
  return (perStep / stepMs(m, m.maxBatchSize, perStep * prefill)) * 1000;
}
