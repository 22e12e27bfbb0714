/**
 * The Batch and Files API settings as the chart sets them (values `batches`, `files`): each
 * one in the environment of the service that reads it, under the name that service's config
 * loader takes, and none at all when left null (the service's own default holds).
 */
import { describe, expect, it } from "vitest";
import { loadConfig as gatewayConfig } from "../../services/gateway/src/config.ts";
import { loadConfig as schedulerConfig } from "../../services/scheduler/src/config.ts";
import { type Container, find, podOf, type Rendered, render, templateOf } from "./render.ts";

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

describe("batches.gateway: batch lines in a gateway Deployment of their own", () => {
  const S3 = ["--set", "storage.backend=s3", "--set", "storage.s3.bucket=infera-files"];
  const labelsOf = (o: Rendered) => templateOf(o).metadata.labels;
  const envMap = (o: Rendered) => Object.fromEntries((podOf(o).containers[0]?.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]));

  it("is off by default: one gateway Deployment, which runs the batch lines", () => {
    const objs = render();
    expect(objs.some((o) => o.metadata.name === "infera-batch-gateway")).toBe(false);
    expect(envMap(find(objs, "Deployment", "infera-gateway"))).not.toHaveProperty("BATCH_WORKER_CONCURRENCY");
  });

  it("on: the batch gateways run the lines at BATCH_NICE on pods of their own, the gateways behind the Service none", () => {
    const objs = render([
      ...S3,
      "--set",
      "batches.gateway.enabled=true",
      "--set",
      "batches.gateway.replicas=2",
      "--set",
      "batches.gateway.nice=15",
      "--set",
      "batches.workerConcurrency=8",
      "--set-json",
      'batches.gateway.resources={"requests":{"cpu":"2"}}',
      "--set-json",
      'batches.gateway.nodeSelector={"pool":"batch"}',
      "--set-json",
      'gateway.nodeSelector={"pool":"web"}',
    ]);
    const gw = find(objs, "Deployment", "infera-gateway");
    const batch = find(objs, "Deployment", "infera-batch-gateway");
    expect(batch.spec?.replicas).toBe(2);
    // The Service sends requests to the gateways only.
    const selector = (find(objs, "Service", "infera-gateway").spec as { selector: Record<string, string> }).selector;
    const selects = (labels: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
    expect(selects(labelsOf(gw))).toBe(true);
    expect(selects(labelsOf(batch))).toBe(false);
    // Same image, its own placement.
    expect(podOf(batch).containers[0]?.image).toBe(podOf(gw).containers[0]?.image);
    const spec = (o: Rendered) => templateOf(o).spec;
    expect(spec(batch).nodeSelector).toEqual({ pool: "batch" });
    expect(spec(gw).nodeSelector).toEqual({ pool: "web" });
    expect((podOf(batch).containers[0] as { resources?: unknown }).resources).toEqual({ requests: { cpu: "2" } });

    const base = { DATABASE_URL: "postgres://x/y", REDIS_URL: "redis://x" };
    const e = { gateway: envMap(gw), batch: envMap(batch) };
    expect(e.batch).not.toHaveProperty("BOOTSTRAP_ADMIN_KEY");
    expect(e.gateway).toHaveProperty("BOOTSTRAP_ADMIN_KEY");
    expect(gatewayConfig({ ...base, ...(e.gateway as Record<string, string>) })).toMatchObject({ batchWorkerConcurrency: 0, batchNice: 0 });
    expect(gatewayConfig({ ...base, ...(e.batch as Record<string, string>) })).toMatchObject({ batchWorkerConcurrency: 8, batchNice: 15 });
  });

  it("falls back to the gateway's placement, and refuses what would not work", () => {
    const objs = render([...S3, "--set", "batches.gateway.enabled=true", "--set-json", 'gateway.tolerations=[{"key":"web","operator":"Exists"}]']);
    const spec = templateOf(find(objs, "Deployment", "infera-batch-gateway")).spec;
    expect(spec.tolerations).toEqual([{ key: "web", operator: "Exists" }]);
    expect(() => render([...S3, "--set", "batches.gateway.enabled=true", "--set", "batches.gateway.nice=20"])).toThrow();
    // Local storage without a shared claim: the batch gateway would write files no gateway can read.
    expect(() => render(["--set", "batches.gateway.enabled=true"])).toThrow(/storage/);
  });
});
