/**
 * `GET /deploy/{id}/replicas`: each replica as an operator needs to see it, joined from
 * the runtime's last observation (phase, node, GPU, since when, restarts, why it is not
 * running — written by the scheduler's reconciler) and the agent's heartbeat (last report,
 * load, engine health). A replica the runtime runs but whose engine is not healthy yet is
 * `starting`, with the reason; one only the heartbeats know (no observation yet) still shows.
 */
import type { ObservedDeployment, ObservedReplica, ReplicaReport } from "@infera/contracts";

/** A heartbeat older than this is stale: the agent is gone or cannot reach Redis. */
export const HEARTBEAT_STALE_MS = 10_000;

export type ReplicaPhaseOut = "pending" | "starting" | "ready" | "draining" | "stopping" | "failed";

export interface ReplicaOut {
  replica_id: string;
  phase: ReplicaPhaseOut;
  /** Serving: placement sends it requests. */
  ready: boolean;
  /** Why it is not ready (null when it is). */
  reason: string | null;
  node: string | null;
  gpu: string | null;
  num_gpus: number | null;
  /** Since when it has been in the runtime's current phase (ISO 8601). */
  since: string | null;
  /** The agent's last report (ISO 8601), null before its first. */
  last_heartbeat: string | null;
  load: { running: number; waiting: number; kv_cache_usage: number } | null;
  restarts: number;
  /** Weights download progress 0..1, where the engine reports one. */
  download_progress: number | null;
}

function iso(ms: number | null | undefined): string | null {
  return ms === null || ms === undefined ? null : new Date(ms).toISOString();
}

function parseReports(raw: Record<string, string>): Map<string, ReplicaReport> {
  const out = new Map<string, ReplicaReport>();
  for (const [id, json] of Object.entries(raw)) {
    try {
      out.set(id, JSON.parse(json) as ReplicaReport);
    } catch {
      // a malformed report shows nothing
    }
  }
  return out;
}

/** Phase and reason from the runtime's view and the heartbeat. */
function judge(o: ObservedReplica | undefined, hb: ReplicaReport | undefined, now: number): { phase: ReplicaPhaseOut; reason: string | null } {
  const fresh = hb !== undefined && now - hb.at <= HEARTBEAT_STALE_MS;
  if (o?.phase === "failed") return { phase: "failed", reason: o.reason ?? "the replica failed" };
  if (o?.phase === "stopping") return { phase: "stopping", reason: "stopping" };
  if (o?.phase === "pending") return { phase: "pending", reason: o.reason ?? "waiting to be scheduled" };
  if (o?.phase === "starting") return { phase: "starting", reason: o.reason ?? "the engine and agent are starting" };
  // The runtime says it runs (or the runtime's view is missing): the heartbeat decides. What the
  // runtime adds (it restarted after a crash) comes first.
  const also = (why: string) => (o?.reason ? `${o.reason}; ${why}` : why);
  // A report from before the runtime (re)started it is its previous process's.
  if (hb === undefined || (o?.since != null && hb.at < o.since)) return { phase: "starting", reason: also("the worker agent has not reported yet") };
  if (!fresh) return { phase: "starting", reason: also(`no heartbeat from the worker agent for ${Math.round((now - hb.at) / 1000)} s`) };
  if (hb.draining) return { phase: "draining", reason: "draining: finishing its requests, taking no new ones" };
  if (!hb.healthy) return { phase: "starting", reason: also("the engine is not healthy yet (loading the model, or its health check fails)") };
  return { phase: "ready", reason: null };
}

export function replicasOut(observed: ObservedDeployment | null, rawReports: Record<string, string>, now: number): ReplicaOut[] {
  const reports = parseReports(rawReports);
  const ids = [...(observed?.replicas.map((r) => r.replicaId) ?? [])];
  for (const id of reports.keys()) if (!ids.includes(id)) ids.push(id);
  return ids.map((id) => {
    const o = observed?.replicas.find((r) => r.replicaId === id);
    const hb = reports.get(id);
    const { phase, reason } = judge(o, hb, now);
    return {
      replica_id: id,
      phase,
      ready: phase === "ready",
      reason,
      node: o?.node ?? null,
      gpu: o?.gpu ?? null,
      num_gpus: o?.numGpus ?? null,
      since: iso(o?.since),
      last_heartbeat: iso(hb?.at),
      load: hb ? { running: hb.running, waiting: hb.waiting, kv_cache_usage: hb.kvCacheUsage } : null,
      restarts: o?.restarts ?? 0,
      download_progress: o?.downloadProgress ?? null,
    };
  });
}
