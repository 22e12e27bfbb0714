/**
 * How placement reads a replica's load. Shared by every policy so "room" and "load" mean
 * the same thing everywhere (scheduler, simulator, metrics).
 */
import type { ReplicaView } from "./types.ts";

/** A replica has room when what it runs plus what we just sent it is below its batch size. */
export function hasRoom(r: ReplicaView): boolean {
  return r.running + r.inflight < r.capacity;
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
 */
export function pickLeastLoaded(
  replicas: readonly ReplicaView[],
  exclude: readonly string[] | undefined,
  random: () => number,
): number {
  let best = -1;
  let bestLoad = 0;
  let bestKv = 0;
  let ties = 0;
  for (let i = 0; i < replicas.length; i++) {
    const r = replicas[i]!;
    if (r.running + r.inflight >= r.capacity) continue;
    if (exclude !== undefined && exclude.length > 0 && isExcluded(r.id, exclude)) continue;
    const load = loadOf(r);
    if (best < 0 || load < bestLoad || (load === bestLoad && r.kvCacheUsage < bestKv)) {
      best = i;
      bestLoad = load;
      bestKv = r.kvCacheUsage;
      ties = 1;
    } else if (load === bestLoad && r.kvCacheUsage === bestKv) {
      ties++;
      if (random() * ties < 1) best = i;
    }
  }
  return best;
}
