/** Round-robin placement: the baseline. Cycles through replicas, skipping those without room (reserved slots included: see `hasRoom`). */
import { hasRoom, isExcluded } from "./load.ts";
import type { PlacementPolicy, PlacementRequest, ReplicaView } from "./types.ts";

export function createRoundRobin(): PlacementPolicy {
  let cursor = 0;
  return {
    name: "round-robin",
    place(req: PlacementRequest, replicas: readonly ReplicaView[]): string | null {
      const n = replicas.length;
      if (n === 0) return null;
      const start = cursor % n;
      for (let k = 0; k < n; k++) {
        const i = start + k < n ? start + k : start + k - n;
        const r = replicas[i]!;
        if (!hasRoom(r, req.backlogged) || isExcluded(r.id, req.exclude)) continue;
        cursor = i + 1;
        return r.id;
      }
      return null;
    },
    forget(): void {},
  };
}
