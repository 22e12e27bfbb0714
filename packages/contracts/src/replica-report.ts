/**
 * What an agent reports about its replica, every heartbeat (a field of the deployment's
 * `replicas` hash): read by the scheduler for placement and by the deploy API for
 * `instances`. Parsed with its schema wherever it is read.
 */
import Type, { type Static } from "typebox";
import { Compile } from "typebox/compile";

export const ReplicaReport = Type.Object({
  replicaId: Type.String(),
  deploymentId: Type.String(),
  /** host:port of the agent's gRPC server. */
  address: Type.String(),
  /** Requests running in the engine (from its metrics) — or the agent's own count when higher. */
  running: Type.Number({ minimum: 0 }),
  /** Requests waiting inside the engine. */
  waiting: Type.Number({ minimum: 0 }),
  /** KV-cache use, 0..1. */
  kvCacheUsage: Type.Number(),
  healthy: Type.Boolean(),
  /** Draining: finishing what it has, taking nothing new. */
  draining: Type.Boolean(),
  /** Epoch ms of this report. */
  at: Type.Number(),
  /**
   * Epoch ms the engine's load was read (≤ `at`): a request that ended after it may still be
   * counted in `running`. Absent: `at`.
   */
  sampledAt: Type.Optional(Type.Number()),
});
export type ReplicaReport = Static<typeof ReplicaReport>;

const check = Compile(ReplicaReport);

/** A report as stored, or undefined when it is not one (not JSON, or not the shape). */
export function parseReplicaReport(text: string): ReplicaReport | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  return check.Check(v) ? v : undefined;
}
