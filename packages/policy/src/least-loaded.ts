/**
 * Least-loaded placement: (running + waiting + inflight) / capacity, ties by KV-cache use, then
 * random. A request whose tenant has nothing else queued goes by least pending prefill first.
 */
import { DEFAULT_PREFILL_TOKENS_PER_MS, pickLeastLoaded } from "./load.ts";
import type { PlacementPolicy, PlacementRequest, PolicyEnv, ReplicaView } from "./types.ts";

export function createLeastLoaded(env: PolicyEnv, prefillTokensPerMs = DEFAULT_PREFILL_TOKENS_PER_MS): PlacementPolicy {
  const random = (): number => env.random();
  return {
    name: "least-loaded",
    place(req: PlacementRequest, replicas: readonly ReplicaView[]): string | null {
      const i = pickLeastLoaded(replicas, req, random, { now: env.now(), tokensPerMs: prefillTokensPerMs });
      return i < 0 ? null : replicas[i]!.id;
    },
    forget(): void {},
  };
}
