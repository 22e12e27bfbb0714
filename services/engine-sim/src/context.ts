/** What every route handler gets: the config, the engine, fault injection, counters, logger. */
import type { Logger } from "@infera/core";
import type { SimConfig } from "./config.ts";
import type { Engine } from "./engine.ts";
import type { Flavor } from "./errors.ts";
import type { FaultInjector } from "./faults.ts";

/** Counters /sim/stats reports beside the engine's own. */
export interface SimCounters {
  /** Inference requests received (generation, embeddings, images). */
  requests: number;
  /** Requests answered with an error (validation, injected faults, overload). */
  failed: number;
  /** Injected faults by kind. */
  faults: Record<string, number>;
  /** Engine calls on the embeddings endpoints and the inputs they carried. */
  embeddingCalls: number;
  embeddingInputs: number;
  embeddingTokens: number;
  imageCalls: number;
  images: number;
}

export interface SimContext {
  config: SimConfig;
  flavor: Flavor;
  engine: Engine;
  faults: FaultInjector;
  counters: SimCounters;
  logger: Logger;
  /** Monotonic ms. */
  clock: () => number;
  random: () => number;
}

export function newCounters(): SimCounters {
  return { requests: 0, failed: 0, faults: {}, embeddingCalls: 0, embeddingInputs: 0, embeddingTokens: 0, imageCalls: 0, images: 0 };
}
