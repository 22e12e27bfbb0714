export type { PlacementPolicy, PlacementRequest, PolicyEnv, PolicyName, ReplicaView } from "./types.ts";
export { addPrefill, DEFAULT_PREFILL_TOKENS_PER_MS, hasRoom, isExcluded, loadOf, pendingPrefill, pickLeastLoaded, reservedSlots } from "./load.ts";
export { createRoundRobin } from "./round-robin.ts";
export { createLeastLoaded } from "./least-loaded.ts";
export {
  createPrefixAffinity,
  type PrefixAffinityCounters,
  type PrefixAffinityOptions,
  type PrefixAffinityPolicy,
} from "./prefix-affinity.ts";
export { createPlacementPolicy, isPolicyName, POLICY_NAMES, type PlacementOptions } from "./placement.ts";
export { DEFAULT_BLOCK_CHARS, DEFAULT_MAX_BLOCKS, prefixHashes } from "./prefix-hash.ts";
export { FairQueue, type EnqueueMeta, type FairQueueOptions, type FairQueueWeights } from "./fair-queue.ts";
export {
  decideReplicas,
  INITIAL_AUTOSCALER_STATE,
  SCALE_REASONS,
  type AutoscalerInput,
  type AutoscalerOptions,
  type AutoscalerState,
  type ScaleDecision,
  type ScaleReason,
} from "./autoscaler.ts";
export { heldSlots, planGrants, type GatewaySlots } from "./slot-grants.ts";
