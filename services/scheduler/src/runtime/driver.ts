/**
 * The runtime driver contract: how the reconciler turns "this deployment wants N
 * replicas" into running engines + agents. `local` starts child processes
 * (engine-sim + worker agent); `kubernetes` manages one apps/v1 Deployment per
 * platform deployment (engine container + agent sidecar).
 */

import type { EngineKind, GpuCapacity, LogSource, Task } from "@infera/contracts";

export type { EngineKind };

/** Everything a driver needs to start replicas of one deployment. Immutable per deployment. */
export interface ReplicaSpec {
  deploymentId: string;
  /** The name the engine serves (`--served-model-name`); clients' `model` is resolved to it. */
  servedModelName: string;
  task: Task;
  /** Input modalities of the model (what local mode's engine-sim accepts; a real engine knows its model's). */
  modalities?: readonly string[];
  engine: EngineKind;
  gpu: string;
  numGpus: number;
  maxBatchSize: number;
  hf?: { repo: string; revision?: string; tokenSecretName?: string };
  /**
   * The deployment's Hugging Face token in clear, opened by the reconciler for a driver
   * that hands it to engines (kubernetes: the `infera-hf-<id>` Secret, written before the
   * engine Deployment). Never logged (the logger redacts `hfToken`) and never put in a
   * manifest. Absent when the deployment has none or the driver ignores tokens (local).
   */
  hfToken?: string;
  containerImage?: string;
  extraArgs: string[];
}

export type ReplicaPhase = "pending" | "starting" | "running" | "failed" | "stopping";

export interface ReplicaObservation {
  replicaId: string;
  phase: ReplicaPhase;
  /** Why it failed or is not running yet (image pull error, crash loop, exit code, unschedulable …), for `fail_reason` and `/replicas`. */
  reason?: string;
  /** Consecutive crashes/restarts; the reconciler fails the deployment past a bound. */
  restarts: number;
  /** Epoch ms since it has been in this phase, where the runtime knows. */
  since?: number;
  /** The node (kubernetes) or host (local) it runs on. */
  node?: string;
  /** Weights download progress 0..1, where the engine reports one. */
  downloadProgress?: number;
}

/** What `logs` reads: every replica of the deployment, or one; `tail` lines from the end of each log, then new ones while `follow`. */
export interface LogQuery {
  replicaId?: string;
  tail: number;
  follow: boolean;
  /** Aborted when the reader is gone: the iteration ends. */
  signal: AbortSignal;
}

export interface LogLine {
  replicaId: string;
  /** The engine's output or its worker agent's. */
  source: LogSource;
  line: string;
}

export interface RuntimeDriver {
  readonly name: "local" | "kubernetes";
  /** Make exactly `replicas` replicas of `spec` exist (creating or scaling down). Idempotent. */
  apply(spec: ReplicaSpec, replicas: number): Promise<void>;
  /** What runs for a deployment now. */
  observe(deploymentId: string): Promise<ReplicaObservation[]>;
  /** Remove every replica of a deployment (stop/delete). Idempotent. */
  remove(deploymentId: string): Promise<void>;
  /**
   * Per GPU type, what the cluster's nodes hold (kubernetes in gpu mode; undefined where the
   * runtime does not place by GPU). Published for the deploy API's checks.
   */
  capacity?(): Promise<Map<string, GpuCapacity> | undefined>;
  /** Stop managing (local: stop all child processes). */
  stop(): Promise<void>;
  /**
   * The engine's and agent's log lines of a deployment's replicas (local: the children's log
   * files; kubernetes: pod logs). Throws PlatformError `not_found` for a replica it does not
   * know, `unavailable` when it keeps no logs. Absent: this runtime cannot read logs.
   */
  logs?(deploymentId: string, query: LogQuery): AsyncIterable<LogLine>;
}
