/** The one way to build a placement policy by name (config and the simulator both use it). */
import { createLeastLoaded } from "./least-loaded.ts";
import { createPrefixAffinity, type PrefixAffinityOptions } from "./prefix-affinity.ts";
import { createRoundRobin } from "./round-robin.ts";
import type { PlacementPolicy, PolicyEnv, PolicyName } from "./types.ts";

export const POLICY_NAMES: readonly PolicyName[] = ["round-robin", "least-loaded", "prefix-affinity"];

export interface PlacementOptions {
  prefixAffinity?: PrefixAffinityOptions;
  /** How fast a replica prefills, to estimate what it still has to (default `DEFAULT_PREFILL_TOKENS_PER_MS`). */
  prefillTokensPerMs?: number;
}

export function isPolicyName(s: string): s is PolicyName {
  return (POLICY_NAMES as readonly string[]).includes(s);
}

export function createPlacementPolicy(name: PolicyName, env: PolicyEnv, options: PlacementOptions = {}): PlacementPolicy {
  switch (name) {
    case "round-robin":
      return createRoundRobin();
    case "least-loaded":
      return createLeastLoaded(env, options.prefillTokensPerMs);
    case "prefix-affinity":
      return createPrefixAffinity(env, { prefillTokensPerMs: options.prefillTokensPerMs, ...options.prefixAffinity });
  }
}
