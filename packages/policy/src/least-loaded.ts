/** Least-loaded placement: (running + waiting + inflight) / capacity, ties by KV-cache use, then random. */
import { pickLeastLoaded } from "./load.ts";
import type { PlacementPolicy, PlacementRequest, PolicyEnv, ReplicaView } from "./types.ts";

export function createLeastLoaded(env: PolicyEnv): PlacementPolicy {
  const random = (): number => env.random();
  return {
    name: "least-loaded",
    place(req: PlacementRequest, replicas: readonly ReplicaView[]): string | null {
      const i = pickLeastLoaded(replicas, req.exclude, random);
      return i < 0 ? null : replicas[i]!.id;
    },
    forget(): void {},
  };
}
