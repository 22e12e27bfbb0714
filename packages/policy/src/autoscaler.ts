/**
 * Replica autoscaling decision: a pure function of what the scheduler observes, the state it
 * carried from the last decision, and the deployment's settings. The caller applies
 * `desired` (through the runtime driver) and keeps `state` for next time.
 *
 * - Scale up fast: requests waiting longer than `queueWaitUpMs` (or more queued than the free
 *   slots) → at once to the replicas the demand needs; load above `scaleUpLoad` → likewise.
 * - Scale down slowly: only after load stayed below `scaleDownLoad` with nothing queued for
 *   `scaleDownCooldownMs`, one replica per cooldown (hysteresis: no flapping).
 * - Scale to zero only when min_instances is 0 and nothing was queued or running for
 *   `scaleToZeroIdleMs`; a queued request at zero replicas wakes one at once.
 * - Always clamped to [minInstances, maxInstances].
 */

export type ScaleReason = "scale_up_queue" | "scale_up_load" | "scale_down_idle" | "scale_to_zero" | "wake_from_zero" | "hold" | "clamp_min" | "clamp_max";

export const SCALE_REASONS: readonly ScaleReason[] = [
  "scale_up_queue",
  "scale_up_load",
  "scale_down_idle",
  "scale_to_zero",
  "wake_from_zero",
  "hold",
  "clamp_min",
  "clamp_max",
];

export interface AutoscalerInput {
  /** ms, env.now() */
  now: number;
  /** Replicas that exist (ready or starting): what the last decision asked for. */
  replicas: number;
  /** Requests in the deployment's queue. */
  queued: number;
  /** Age of the oldest queued request, ms (0 when none). */
  oldestWaitMs: number;
  /** Requests running on (or in flight to) the replicas. */
  running: number;
  /** max_batch_size of one replica. */
  capacityPerReplica: number;
}

export interface AutoscalerState {
  /** Since when load has been below scaleDownLoad with nothing queued (null: it isn't). */
  lowSince: number | null;
  /** Since when nothing has been queued or running (null: something is). */
  idleSince: number | null;
}

export const INITIAL_AUTOSCALER_STATE: AutoscalerState = { lowSince: null, idleSince: null };

export interface AutoscalerOptions {
  minInstances: number;
  maxInstances: number;
  /** Load (running / capacity) a scale-up aims at. Default 0.7. */
  targetLoad?: number;
  /** Scale up when load is above this. Default 0.85. */
  scaleUpLoad?: number;
  /** Scale down only while load is below this. Default 0.4. */
  scaleDownLoad?: number;
  /** Scale up when the oldest queued request waited this long. Default 1,000 ms. */
  queueWaitUpMs?: number;
  /** Load must stay low this long before each step down. Default 120,000 ms. */
  scaleDownCooldownMs?: number;
  /** Idle this long before scaling to zero (min 0 only). Default 600,000 ms. */
  scaleToZeroIdleMs?: number;
}

export interface ScaleDecision {
  desired: number;
  reason: ScaleReason;
  state: AutoscalerState;
}

export function decideReplicas(input: AutoscalerInput, state: AutoscalerState, options: AutoscalerOptions): ScaleDecision {
  const min = Math.max(0, Math.floor(options.minInstances));
  const max = Math.max(min, Math.floor(options.maxInstances));
  const targetLoad = options.targetLoad ?? 0.7;
  const scaleUpLoad = options.scaleUpLoad ?? 0.85;
  const scaleDownLoad = options.scaleDownLoad ?? 0.4;
  const queueWaitUpMs = options.queueWaitUpMs ?? 1_000;
  const cooldown = options.scaleDownCooldownMs ?? 120_000;
  const idleMs = options.scaleToZeroIdleMs ?? 600_000;
  const cap = Math.max(1, input.capacityPerReplica);
  const { now, replicas, queued, running } = input;

  const busy = queued > 0 || running > 0;
  const idleSince = busy ? null : (state.idleSince ?? now);
  const load = replicas > 0 ? running / (replicas * cap) : queued > 0 ? Number.POSITIVE_INFINITY : 0;
  const low = queued === 0 && load < scaleDownLoad;
  const lowSince = low ? (state.lowSince ?? now) : null;
  /** Replicas the current demand needs at the target load. */
  const needed = Math.ceil((running + queued) / (cap * targetLoad));

  let desired = replicas;
  let reason: ScaleReason = "hold";
  let next: AutoscalerState = { lowSince, idleSince };

  if (replicas === 0) {
    if (queued > 0) {
      desired = Math.max(1, needed);
      reason = "wake_from_zero";
    }
  } else if (queued > 0 && (input.oldestWaitMs >= queueWaitUpMs || queued > replicas * cap - running)) {
    desired = Math.max(replicas + 1, needed);
    reason = "scale_up_queue";
  } else if (load > scaleUpLoad) {
    desired = Math.max(replicas + 1, needed);
    reason = "scale_up_load";
  } else if (min === 0 && idleSince !== null && now - idleSince >= idleMs) {
    desired = 0;
    reason = "scale_to_zero";
  } else if (lowSince !== null && now - lowSince >= cooldown && replicas > Math.max(1, min)) {
    desired = Math.max(replicas - 1, needed, 1);
    if (desired < replicas) {
      reason = "scale_down_idle";
      // The next step down waits a whole cooldown again.
      next = { lowSince: now, idleSince };
    } else desired = replicas;
  }

  if (desired < min) {
    desired = min;
    reason = "clamp_min";
  } else if (desired > max) {
    desired = max;
    reason = "clamp_max";
  }
  return { desired, reason, state: next };
}
