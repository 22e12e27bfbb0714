/**
 * How placement reads a replica's load. Shared by every policy so "room" and "load" mean
 * the same thing everywhere (scheduler, simulator, metrics).
 */
import type { PlacementRequest, ReplicaView } from "./types.ts";

/**
 * Slots of each replica kept for requests whose tenant has nothing else queued: 1/64 of its
 * batch (2 of 128; none below 64). A flooding tenant fills the rest, so a light tenant's
 * request never waits for a slot to free and can pick the replica with the least prefill
 * ahead of it (README, "Scheduling"; `pnpm sim --workload noisy-neighbour`).
 */
export function reservedSlots(capacity: number): number {
  return capacity >> 6;
}

/**
 * A replica has room when what it runs plus what we just sent it is below its batch size,
 * less the reserved slots for a request whose tenant is backlogged. A request whose tenant is
 * not does not count running requests that may have ended (`ended`): a flood's requests end
 * all the time, and their releases reach the scheduler before the replica's report drops
 * them, which would otherwise fill the reserved slots until the next report, and the next.
 */
export function hasRoom(r: ReplicaView, backlogged = false): boolean {
  if (backlogged) return r.running + r.inflight < r.capacity - reservedSlots(r.capacity);
  return Math.max(0, r.running - (r.ended ?? 0)) + r.inflight < r.capacity;
}

/** The default drain rate of `pendingPrefill`: ~20,000 prompt tokens/s, an 8B model on one H100. */
export const DEFAULT_PREFILL_TOKENS_PER_MS = 20;

/** Prompt tokens a replica probably still has to prefill at `now`: `prefillTokens` drained since `prefillAt`. */
export function pendingPrefill(r: Pick<ReplicaView, "prefillTokens" | "prefillAt">, now: number, tokensPerMs: number): number {
  const t = r.prefillTokens ?? 0;
  if (t <= 0) return 0;
  const left = t - (now - (r.prefillAt ?? now)) * tokensPerMs;
  return Math.max(left, 0);
}

/** Adds a placed request's prompt tokens to what its replica has pending, as of `now`. */
export function addPrefill(r: Pick<ReplicaView, "prefillTokens" | "prefillAt">, promptTokens: number, now: number, tokensPerMs: number): void {
  r.prefillTokens = pendingPrefill(r, now, tokensPerMs) + promptTokens;
  r.prefillAt = now;
}

/** Load as a fraction of capacity: running + waiting + inflight (waiting counts as load). */
export function loadOf(r: ReplicaView): number {
  return r.capacity > 0 ? (r.running + r.waiting + r.inflight) / r.capacity : Number.POSITIVE_INFINITY;
}

export function isExcluded(id: string, exclude: readonly string[] | undefined): boolean {
  if (exclude === undefined || exclude.length === 0) return false;
  for (let i = 0; i < exclude.length; i++) if (exclude[i] === id) return true;
  return false;
}

/**
 * Index of the least-loaded replica with room that is not excluded, or -1.
 * Ties on load are broken by KV-cache use, then uniformly at random (reservoir sampling,
 * so `random` is called only when there is a tie).
 *
 * A request that is not backlogged (see `PlacementRequest.backlogged`) may use reserved slots
 * and, given `prefill`, goes first by the least pending prefill (its first token waits for
 * the prompts ahead of it), then by load.
 */
export function pickLeastLoaded(
  replicas: readonly ReplicaView[],
  req: Pick<PlacementRequest, "exclude" | "backlogged">,
  random: () => number,
  prefill?: { now: number; tokensPerMs: number },
): number {
  const backlogged = req.backlogged === true;
  const exclude = req.exclude;
  const byPrefill = !backlogged && prefill !== undefined;
  let best = -1;
  let bestPre = 0;
  let bestLoad = 0;
  let bestKv = 0;
  let ties = 0;
  for (let i = 0; i < replicas.length; i++) {
    const r = replicas[i]!;
    if (!hasRoom(r, backlogged)) continue;
    if (exclude !== undefined && exclude.length > 0 && isExcluded(r.id, exclude)) continue;
    const pre = byPrefill ? pendingPrefill(r, prefill.now, prefill.tokensPerMs) : 0;
    const load = loadOf(r);
    if (best < 0 || pre < bestPre || (pre === bestPre && (load < bestLoad || (load === bestLoad && r.kvCacheUsage < bestKv)))) {
      best = i;
      bestPre = pre;
      bestLoad = load;
      bestKv = r.kvCacheUsage;
      ties = 1;
    } else if (pre === bestPre && load === bestLoad && r.kvCacheUsage === bestKv) {
      ties++;
      if (random() * ties < 1) best = i;
    }
  }
  return best;
}
