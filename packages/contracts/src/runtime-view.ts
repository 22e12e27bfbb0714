/**
 * What the scheduler tells gateways about a deployment's replicas, through Redis: the
 * runtime's last observation of them (the reconciler leader writes it every pass; the
 * deploy API's `/replicas` joins it with the agents' heartbeats), and replica logs on
 * request (`/logs`): a gateway publishes a `LogRequest`, the reconciler leader reads the
 * runtime's logs (local: its children's log files; kubernetes: pod logs) and appends them
 * to a stream of that request's own, which the gateway relays to its client. Logs never
 * travel unless asked for, and stop when the asking gateway stops renewing its lease.
 */

/** Where a replica is in the runtime's eyes (the driver's phase). */
export type RuntimePhase = "pending" | "starting" | "running" | "failed" | "stopping";

/** One replica as the runtime driver last saw it. Times are epoch ms. */
export interface ObservedReplica {
  replicaId: string;
  phase: RuntimePhase;
  /** Since when it has been in this phase. */
  since: number | null;
  /** The node (kubernetes) or host (local) it runs on; null while unscheduled. */
  node: string | null;
  /** The GPU type it runs on, and how many. */
  gpu: string | null;
  numGpus: number | null;
  /** Why it is not running: pull error, crash with exit code, unschedulable with the scheduler's message. */
  reason: string | null;
  restarts: number;
  /** Weights download progress 0..1, where the engine reports one; else null. */
  downloadProgress: number | null;
}

/** The reconciler's snapshot of one deployment (JSON in `runtimeObserved(id)`). */
export interface ObservedDeployment {
  deploymentId: string;
  runtime: "local" | "kubernetes";
  /** When it was observed. */
  at: number;
  replicas: ObservedReplica[];
}

/** A gateway asks for a deployment's logs (published on `logRequests`). */
export interface LogRequest {
  /** The request's own id: its stream is `logStream(sid)`, its lease `logLease(sid)`. */
  sid: string;
  deploymentId: string;
  /** One replica, or every replica of the deployment. */
  replicaId?: string;
  /** Lines from the end of each log to start with. */
  tail: number;
  /** Keep sending new lines until the lease lapses. */
  follow: boolean;
}

export type LogSource = "engine" | "agent";

/** One entry of a log stream (field `e`, JSON). */
export type LogEntry =
  | { t: "line"; replicaId: string; source: LogSource; line: string }
  /** Every line asked for was sent (not following), or the runtime ended the logs. */
  | { t: "end" }
  /** The logs cannot be read (naming why); the stream ends. */
  | { t: "error"; code: "not_found" | "unavailable"; message: string }
  /** Nothing new; the reader is alive (sent while following). */
  | { t: "beat" };

/** The stream field a LogEntry is in. */
export const LOG_FIELD = "e";
/** How long a log request lives without its gateway renewing the lease. */
export const LOG_LEASE_MS = 15_000;
