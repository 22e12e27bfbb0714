/**
 * The latency model (after llm-d's inference simulator): time to first token plus a prefill
 * cost per uncached prompt token, then an inter-token latency per token. Each draw has a
 * bounded relative jitter, and a load factor stretches everything as the running sequences
 * approach max-num-seqs.
 */
import { gaussian } from "./random.ts";

export interface LatencyConfig {
  ttftMs: number;
  itlMs: number;
  prefillUsPerToken: number;
  /** Relative standard deviation of each draw; draws are clamped to ±2σ. */
  jitter: number;
  /** Latency multiplier when running sequences reach maxNumSeqs (1 = no slowdown). */
  loadFactor: number;
  maxNumSeqs: number;
}

export interface LatencyModel {
  /** Milliseconds from admission to the first token. */
  firstToken(uncachedPromptTokens: number, running: number): number;
  /** Milliseconds between two tokens of one sequence. */
  interToken(running: number): number;
  /** Milliseconds for a whole non-streamed answer of `tokens` tokens after the first. */
  interTokens(tokens: number, running: number): number;
  readonly config: LatencyConfig;
}

export function createLatencyModel(config: LatencyConfig, random: () => number = Math.random): LatencyModel {
  const load = (running: number): number => {
    if (config.loadFactor === 1 || config.maxNumSeqs <= 1) return 1;
    const frac = Math.min(1, Math.max(0, (running - 1) / (config.maxNumSeqs - 1)));
    return 1 + (config.loadFactor - 1) * frac;
  };
  const draw = (meanMs: number): number => {
    if (meanMs <= 0) return 0;
    if (config.jitter <= 0) return meanMs;
    const z = Math.max(-2, Math.min(2, gaussian(random)));
    return Math.max(0, meanMs * (1 + z * config.jitter));
  };
  return {
    config,
    firstToken(uncached, running) {
      return (draw(config.ttftMs) + draw((config.prefillUsPerToken * uncached) / 1000)) * load(running);
    },
    interToken(running) {
      return draw(config.itlMs) * load(running);
    },
    interTokens(tokens, running) {
      // The mean of n bounded draws: jitter shrinks with √n, as a sum of independent gaps does.
      if (tokens <= 0 || config.itlMs <= 0) return 0;
      const mean = config.itlMs * tokens;
      const z = Math.max(-2, Math.min(2, gaussian(random)));
      return Math.max(0, mean * (1 + (z * config.jitter) / Math.sqrt(tokens))) * load(running);
    },
  };
}
