/**
 * The Batch and Files API settings as the chart sets them (values `batches`, `files`): each
 * one in the environment of the service that reads it, under the name that service's config
 * loader takes, and none at all when left null (the service's own default holds).
 */
import { describe, expect, it } from "vitest";
import { loadConfig as gatewayConfig } from "../../services/gateway/src/config.ts";
import { loadConfig as schedulerConfig } from "../../services/scheduler/src/config.ts";
import { CHART, type Container, find, podOf, type Rendered, render, templateOf } from "./render.ts";

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

/**
 * What Prometheus Operator would scrape: for each ServiceMonitor, the Services its selector
 * picks, their ports its endpoints name, and behind each the Deployments whose pods the Service
 * selects, on the container port the Service's targetPort names.
 */
function scrapeTargets(objs: readonly Rendered[]) {
  type Svc = { selector?: Record<string, string>; clusterIP?: string; ports: { name: string; port: number; targetPort: string | number }[] };
  type Mon = { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string }[] };
  const selects = (sel: Record<string, string> | undefined, labels: Record<string, string> = {}) =>
    !!sel && Object.entries(sel).every(([k, v]) => labels[k] === v);
  const targets: { monitor: string; service: string; deployment: string; containerPort: number; path: string }[] = [];
  for (const m of objs.filter((o) => o.kind === "ServiceMonitor")) {
    const ms = m.spec as unknown as Mon;
    for (const s of objs.filter((o) => o.kind === "Service" && selects(ms.selector.matchLabels, o.metadata.labels))) {
      const ss = s.spec as unknown as Svc;
      for (const ep of ms.endpoints) {
        const port = ss.ports.find((p) => p.name === ep.port);
        if (!port) continue;
        for (const d of objs.filter((o) => o.kind === "Deployment" && selects(ss.selector, templateOf(o).metadata.labels))) {
          const cp = podOf(d)
            .containers.flatMap((c) => c.ports ?? [])
            .find((p) => (typeof port.targetPort === "number" ? p.containerPort === port.targetPort : p.name === port.targetPort));
          if (cp)
            targets.push({ monitor: m.metadata.name, service: s.metadata.name, deployment: d.metadata.name, containerPort: cp.containerPort, path: ep.path });
        }
      }
    }
  }
  return targets;
}

describe("the batch gateway is observed and operated like the gateway", () => {
  const S3 = ["--set", "storage.backend=s3", "--set", "storage.s3.bucket=infera-files"];
  const MONITORED = ["--set", "monitoring.serviceMonitor.enabled=true"];

  it("with the ServiceMonitors on, Prometheus scrapes each batch gateway pod's /metrics on its HTTP port, through a headless Service no request goes to", () => {
    const objs = render([...S3, ...MONITORED, "--set", "batches.gateway.enabled=true", "--set", "gateway.port=8181"]);
    const targets = scrapeTargets(objs);
    expect(targets.filter((t) => t.deployment === "infera-batch-gateway")).toEqual([
      { monitor: "infera-batch-gateway", service: "infera-batch-gateway", deployment: "infera-batch-gateway", containerPort: 8181, path: "/metrics" },
    ]);
    // The gateways as before, each pod scraped once.
    expect(targets.filter((t) => t.deployment === "infera-gateway").map((t) => t.monitor)).toEqual(["infera-gateway"]);
    const svc = find(objs, "Service", "infera-batch-gateway").spec as { clusterIP?: string; type?: string };
    expect(svc.clusterIP).toBe("None");
    // The one Service clients use (the Ingress' backend) still selects the gateways only.
    const ingressless = render([...S3, "--set", "batches.gateway.enabled=true"]);
    expect(ingressless.filter((o) => o.kind === "Service" && o.metadata.name.includes("gateway")).map((o) => o.metadata.name)).toEqual(["infera-gateway"]);
  });

  it("scrapes nothing of a batch gateway when batches.gateway is off", () => {
    const objs = render(MONITORED);
    expect(
      scrapeTargets(objs)
        .map((t) => t.deployment)
        .sort(),
    ).toEqual(["infera-gateway", "infera-scheduler"]);
    expect(objs.filter((o) => o.metadata.name === "infera-batch-gateway")).toEqual([]);
  });

  it("a PodDisruptionBudget keeps minAvailable batch gateways through node drains, and refuses one that would block every drain", () => {
    const objs = render([
      ...S3,
      "--set",
      "batches.gateway.enabled=true",
      "--set",
      "batches.gateway.replicas=3",
      "--set",
      "batches.gateway.podDisruptionBudget.enabled=true",
    ]);
    const pdb = find(objs, "PodDisruptionBudget", "infera-batch-gateway").spec as { minAvailable: number; selector: { matchLabels: Record<string, string> } };
    expect(pdb.minAvailable).toBe(1);
    const selected = objs.filter(
      (o) => o.kind === "Deployment" && Object.entries(pdb.selector.matchLabels).every(([k, v]) => templateOf(o).metadata.labels[k] === v),
    );
    expect(selected.map((o) => o.metadata.name)).toEqual(["infera-batch-gateway"]);
    expect(() => render([...S3, "--set", "batches.gateway.enabled=true", "--set", "batches.gateway.podDisruptionBudget.enabled=true"])).toThrow(
      /replicas >= 2/,
    );
    // Off: no budget, whatever podDisruptionBudget says.
    expect(
      render(["--set", "batches.gateway.podDisruptionBudget.enabled=true"]).filter(
        (o) => o.kind === "PodDisruptionBudget" && o.metadata.name === "infera-batch-gateway",
      ),
    ).toEqual([]);
  });

  it("the GPU production profile runs batch lines in two monitored batch gateways behind a PDB, the gateways behind the Ingress none", () => {
    const objs = render(["-f", `${CHART}/values-gpu-production.yaml`]);
    const batch = find(objs, "Deployment", "infera-batch-gateway");
    expect(batch.spec?.replicas).toBe(2);
    expect((podOf(batch).containers[0] as { resources?: unknown }).resources).toMatchObject({ requests: { cpu: "1" } });
    expect(find(objs, "PodDisruptionBudget", "infera-batch-gateway").spec).toMatchObject({ minAvailable: 1 });
    expect(scrapeTargets(objs).some((t) => t.deployment === "infera-batch-gateway" && t.path === "/metrics")).toBe(true);
    const base = { DATABASE_URL: "postgres://x/y", REDIS_URL: "redis://x" };
    const env = (name: string) =>
      Object.fromEntries(
        (podOf(find(objs, "Deployment", name)).containers[0]?.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value as string]),
      );
    expect(gatewayConfig({ ...base, ...env("infera-gateway") })).toMatchObject({ batchWorkerConcurrency: 0, batchNice: 0 });
    expect(gatewayConfig({ ...base, ...env("infera-batch-gateway") })).toMatchObject({ batchNice: 10 });
    expect(gatewayConfig({ ...base, ...env("infera-batch-gateway") }).batchWorkerConcurrency).toBeGreaterThan(0);
  });
});
