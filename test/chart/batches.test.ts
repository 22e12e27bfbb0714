/**
 * The Batch and Files API settings as the chart sets them (values `batches`, `files`): each
 * one in the environment of the service that reads it, under the name that service's config
 * loader takes, and none at all when left null (the service's own default holds).
 */
import { describe, expect, it } from "vitest";
import { loadConfig as gatewayConfig } from "../../services/gateway/src/config.ts";
import { loadConfig as schedulerConfig } from "../../services/scheduler/src/config.ts";
import { type Container, find, podOf, render } from "./render.ts";

const SETTINGS = /^(BATCH_|FILES_|RESPONSES_PURGE_MS$)/;

function envOf(args: string[]) {
  const objs = render(args);
  return Object.fromEntries(
    ["gateway", "scheduler"].map((s) => {
      const c = podOf(find(objs, "Deployment", `infera-${s}`)).containers[0] as Container;
      return [s, Object.fromEntries((c.env ?? []).filter((e) => SETTINGS.test(e.name)).map((e) => [e.name, e.value]))];
    }),
  ) as Record<"gateway" | "scheduler", Record<string, string>>;
}

describe("the chart's batch and file settings", () => {
  it("by default sets none of them: the services' defaults hold", () => {
    expect(envOf([])).toEqual({ gateway: {}, scheduler: {} });
  });

  it("each value reaches the service that reads it, as that service parses it", () => {
    const env = envOf([
      "--set",
      "batches.maxInflight=32",
      // --set would pass 0.4 as a string; a values file (or --set-json) passes the number.
      "--set-json",
      "batches.reserveFraction=0.4",
      "--set",
      "batches.workerConcurrency=0",
      "--set",
      "batches.backoffLatenessMs=0",
      "--set",
      "batches.backoffIntervalMs=500",
      "--set",
      "batches.chunkLines=50",
      "--set",
      "batches.reconcileMs=5000",
      "--set",
      "batches.responsesPurgeMs=600000",
      "--set",
      "files.maxBytes=104857600",
      "--set",
      "files.maxLines=20000",
    ]);
    expect(env.gateway).toEqual({
      BATCH_MAX_INFLIGHT: "32",
      BATCH_RESERVE_FRACTION: "0.4",
      BATCH_WORKER_CONCURRENCY: "0",
      BATCH_BACKOFF_LATENESS_MS: "0",
      BATCH_BACKOFF_INTERVAL_MS: "500",
      FILES_MAX_BYTES: "104857600",
      FILES_MAX_LINES: "20000",
    });
    expect(env.scheduler).toEqual({ BATCH_CHUNK_LINES: "50", BATCH_RECONCILE_MS: "5000", RESPONSES_PURGE_MS: "600000" });
    const base = { DATABASE_URL: "postgres://x/y", REDIS_URL: "redis://x" };
    expect(gatewayConfig({ ...base, ...env.gateway })).toMatchObject({
      batchMaxInflight: 32,
      batchReserveFraction: 0.4,
      batchWorkerConcurrency: 0,
      batchBackoffLatenessMs: 0,
      batchBackoffIntervalMs: 500,
      filesMaxBytes: 104_857_600,
      filesMaxLines: 20_000,
    });
    expect(schedulerConfig({ ...base, ...env.scheduler })).toMatchObject({ batchChunkLines: 50, batchReconcileMs: 5000, responsesPurgeMs: 600_000 });
  });

  it("refuses values the services would refuse", () => {
    expect(() => render(["--set-json", "batches.reserveFraction=1.5"])).toThrow();
    expect(() => render(["--set", "batches.chunkLines=0"])).toThrow();
    expect(() => render(["--set", "batches.backoffIntervalMs=10"])).toThrow();
    expect(render(["--set-json", "batches.reserveFraction=1"]).length).toBeGreaterThan(0);
  });
});
