import { createMetricsRegistry } from "@infera/core";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

export interface SchedulerMetrics {
  registry: Registry;
  queueDepth: Gauge<"deployment">;
  queueTime: Histogram<"deployment">;
  dispatched: Counter<"deployment">;
  rejected: Counter<"deployment" | "reason">;
  replicas: Gauge<"deployment" | "state">;
  autoscaler: Counter<"deployment" | "reason">;
  grantedSlots: Gauge<"deployment">;
  leasedInUse: Gauge<"deployment">;
  leaseVersions: Counter<"deployment">;
}

export function createSchedulerMetrics(): SchedulerMetrics {
  const registry = createMetricsRegistry("scheduler");
  return {
    registry,
    queueDepth: new Gauge({
      name: "scheduler_queue_depth",
      help: "Requests waiting for a replica, per deployment.",
      labelNames: ["deployment"],
      registers: [registry],
    }),
    queueTime: new Histogram({
      name: "scheduler_queue_time_seconds",
      help: "Time from enqueue to dispatch (vllm:request_queue_time_seconds' meaning, at the platform level).",
      labelNames: ["deployment"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    dispatched: new Counter({ name: "scheduler_dispatched_total", help: "Requests placed on a replica.", labelNames: ["deployment"], registers: [registry] }),
    rejected: new Counter({
      name: "scheduler_rejected_total",
      help: "Requests the scheduler gave back without a replica (deadline, deployment gone).",
      labelNames: ["deployment", "reason"],
      registers: [registry],
    }),
    replicas: new Gauge({ name: "scheduler_replicas", help: "Replicas per deployment by state.", labelNames: ["deployment", "state"], registers: [registry] }),
    grantedSlots: new Gauge({
      name: "scheduler_granted_slots",
      help: "Slots lent to gateways for the fast path (their slot leases), per deployment; counted as in flight.",
      labelNames: ["deployment"],
      registers: [registry],
    }),
    leasedInUse: new Gauge({
      name: "scheduler_leased_slots_in_use",
      help: "Fast-path requests the gateways report running on their leased slots, per deployment.",
      labelNames: ["deployment"],
      registers: [registry],
    }),
    leaseVersions: new Counter({
      name: "scheduler_slot_lease_versions_total",
      help: "New slot lease versions written (a lease's slots changed; a renewal is not one), per deployment: the fast path's lease churn.",
      labelNames: ["deployment"],
      registers: [registry],
    }),
    autoscaler: new Counter({
      name: "scheduler_autoscaler_decisions_total",
      help: "Autoscaler decisions by reason.",
      labelNames: ["deployment", "reason"],
      registers: [registry],
    }),
  };
}
