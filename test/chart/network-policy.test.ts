/**
 * The chart's NetworkPolicies, evaluated as a CNI that enforces them would (Kubernetes'
 * semantics: a pod selected by a policy of a direction takes only what one of its rules
 * allows; a rule without `from`/`to` matches every peer, without `ports` every port): who
 * can reach whom, from the rendered policies and the labels of the pods the chart and the
 * scheduler's driver really make. That they are valid objects is test/kube's (a real API
 * server validates them at install).
 */
import { describe, expect, it } from "vitest";
import { buildEngineDeployment } from "../../services/scheduler/src/runtime/kubernetes-manifest.ts";
import { parseEnginePodTemplate, parseGpuTypes } from "../../services/scheduler/src/runtime/kubernetes-template.ts";
import { find, render, type Rendered, templateOf } from "./render.ts";

interface Selector {
  matchLabels?: Record<string, string>;
}
interface Peer {
  podSelector?: Selector;
  namespaceSelector?: Selector;
  ipBlock?: { cidr: string; except?: string[] };
}
interface Rule {
  from?: Peer[];
  to?: Peer[];
  ports?: { port: number; protocol?: string }[];
}
interface Policy {
  metadata: { name: string; namespace?: string };
  spec: { podSelector: Selector; policyTypes: ("Ingress" | "Egress")[]; ingress?: Rule[]; egress?: Rule[] };
}

/** A pod (namespace, labels, IP) or an address outside the cluster (ip only). */
interface Endpoint {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  ip: string;
}

const NS = "infera";

function ipv4(ip: string): number {
  return ip.split(".").reduce((n, o) => n * 256 + Number(o), 0);
}
function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split("/") as [string, string];
  const size = 2 ** (32 - Number(bits));
  return Math.floor(ipv4(ip) / size) === Math.floor(ipv4(base) / size);
}
const matches = (sel: Selector | undefined, labels: Record<string, string> = {}) => Object.entries(sel?.matchLabels ?? {}).every(([k, v]) => labels[k] === v);

function peerMatches(peer: Peer, policyNs: string, e: Endpoint): boolean {
  if (peer.ipBlock) return inCidr(e.ip, peer.ipBlock.cidr) && !(peer.ipBlock.except ?? []).some((x) => inCidr(e.ip, x));
  if (!e.namespace) return false; // pod and namespace selectors only match pods
  const nsOk = peer.namespaceSelector ? matches(peer.namespaceSelector, { "kubernetes.io/metadata.name": e.namespace }) : e.namespace === policyNs;
  return nsOk && (peer.podSelector ? matches(peer.podSelector, e.labels) : true);
}

function ruleAllows(rule: Rule, peers: Peer[] | undefined, policyNs: string, peer: Endpoint, port: number, protocol: string): boolean {
  const portOk = !rule.ports || rule.ports.some((p) => p.port === port && (p.protocol ?? "TCP") === protocol);
  return portOk && (!peers || peers.some((x) => peerMatches(x, policyNs, peer)));
}

function side(policies: Policy[], dir: "Ingress" | "Egress", self: Endpoint, peer: Endpoint, port: number, protocol: string): boolean {
  if (!self.namespace) return true; // outside the cluster: no policy of ours applies there
  const selecting = policies.filter(
    (p) => (p.metadata.namespace ?? NS) === self.namespace && p.spec.policyTypes.includes(dir) && matches(p.spec.podSelector, self.labels),
  );
  if (selecting.length === 0) return true;
  return selecting.some((p) =>
    (dir === "Ingress" ? (p.spec.ingress ?? []) : (p.spec.egress ?? [])).some((r) =>
      ruleAllows(r, dir === "Ingress" ? r.from : r.to, p.metadata.namespace ?? NS, peer, port, protocol),
    ),
  );
}

/** Whether a connection from `a` to `b` on `port` gets through both sides' policies. */
function reaches(policies: Policy[], a: Endpoint, b: Endpoint, port: number, protocol = "TCP"): boolean {
  return side(policies, "Egress", a, b, port, protocol) && side(policies, "Ingress", b, a, port, protocol);
}

/** The pods of a rendered release: the chart's workloads and an engine pod as the driver builds it. */
function cluster(objs: Rendered[]) {
  const policies = objs.filter((o) => o.kind === "NetworkPolicy") as unknown as Policy[];
  let ip = 10;
  const podOf = (kind: string, name: string): Endpoint => ({
    name,
    namespace: NS,
    labels: (find(objs, kind, name).spec?.template as { metadata?: { labels?: Record<string, string> } } | undefined)?.metadata?.labels ?? {},
    ip: `10.244.0.${ip++}`,
  });
  const cm = (suffix: string) => objs.find((o) => o.kind === "ConfigMap" && o.metadata.name.endsWith(suffix))?.data ?? {};
  const template = parseEnginePodTemplate(cm("-engine-pod-template")["engine-pod-template.yaml"] ?? "", "chart");
  const gpuTypes = parseGpuTypes(cm("-gpu-types")["gpu-types.json"] ?? "[]", "chart", { allowEmpty: true });
  const dep = buildEngineDeployment(
    {
      deploymentId: "dep-np",
      servedModelName: "m",
      task: "chat",
      engine: "vllm",
      gpu: gpuTypes[0]?.name ?? "H100-80GB",
      numGpus: 1,
      maxBatchSize: 8,
      hf: { repo: "org/m" },
      extraArgs: [],
    },
    1,
    template,
    { namespace: NS, gpuTypes },
  );
  const pods = {
    gateway: podOf("Deployment", "infera-gateway"),
    scheduler: podOf("Deployment", "infera-scheduler"),
    redis: podOf("StatefulSet", "infera-redis"),
    postgres: podOf("StatefulSet", "infera-postgres"),
    engine: { name: "engine", namespace: NS, labels: dep.spec?.template.metadata?.labels ?? {}, ip: "10.244.1.7" } as Endpoint,
    // Any other workload in the namespace, and a pod of another namespace.
    intruder: { name: "intruder", namespace: NS, labels: { app: "something-else" }, ip: "10.244.2.3" } as Endpoint,
    elsewhere: { name: "elsewhere", namespace: "other", labels: podOf("Deployment", "infera-gateway").labels, ip: "10.244.3.3" } as Endpoint,
    prometheus: { name: "prometheus", namespace: "monitoring", labels: { app: "prometheus" }, ip: "10.244.4.4" } as Endpoint,
  };
  const outside = {
    huggingFace: { name: "huggingface.co", ip: "18.154.227.7" },
    dns: { name: "kube-dns", namespace: "kube-system", labels: { "k8s-app": "kube-dns" }, ip: "10.96.0.10" },
    apiServer: { name: "kubernetes", ip: "10.96.0.1" },
    metadata: { name: "cloud metadata", ip: "169.254.169.254" },
  };
  return { policies, pods, outside };
}

describe("NetworkPolicies (default values: bundled Redis and Postgres)", () => {
  const { policies, pods, outside } = cluster(render());
  const { gateway, scheduler, redis, postgres, engine, intruder, elsewhere, prometheus } = pods;

  it("renders one policy per component", () => {
    expect(policies.map((p) => p.metadata.name).sort()).toEqual(["infera-engine", "infera-gateway", "infera-postgres", "infera-redis", "infera-scheduler"]);
  });

  it("only the gateway reaches the agents' gRPC port; nobody reaches the engine's own port or the agents' metrics", () => {
    expect(reaches(policies, gateway, engine, 50051)).toBe(true);
    for (const p of [scheduler, redis, postgres, intruder, elsewhere, prometheus]) expect(reaches(policies, p, engine, 50051), p.name).toBe(false);
    for (const p of [gateway, scheduler, intruder, prometheus]) {
      expect(reaches(policies, p, engine, 8000), `${p.name} → engine port`).toBe(false);
      expect(reaches(policies, p, engine, 9092), `${p.name} → agent metrics`).toBe(false);
    }
  });

  it("only the platform's pods reach Redis (gateway, scheduler, agents) and Postgres (gateway, scheduler)", () => {
    for (const p of [gateway, scheduler, engine]) expect(reaches(policies, p, redis, 6379), p.name).toBe(true);
    for (const p of [intruder, elsewhere, postgres]) expect(reaches(policies, p, redis, 6379), p.name).toBe(false);
    for (const p of [gateway, scheduler]) expect(reaches(policies, p, postgres, 5432), p.name).toBe(true);
    for (const p of [engine, intruder, elsewhere, redis]) expect(reaches(policies, p, postgres, 5432), p.name).toBe(false);
  });

  it("engine pods send only DNS, Redis and HTTPS to public addresses (model downloads)", () => {
    expect(reaches(policies, engine, outside.dns, 53, "UDP")).toBe(true);
    expect(reaches(policies, engine, outside.huggingFace, 443)).toBe(true);
    expect(reaches(policies, engine, outside.huggingFace, 80)).toBe(false);
    expect(reaches(policies, engine, outside.apiServer, 443)).toBe(false);
    expect(reaches(policies, engine, outside.metadata, 80)).toBe(false);
    expect(reaches(policies, engine, outside.metadata, 443)).toBe(false);
    for (const [p, port] of [
      [gateway, 8080],
      [postgres, 5432],
      [scheduler, 9091],
      [intruder, 443],
    ] as const)
      expect(reaches(policies, engine, p, port), `engine → ${p.name}:${port}`).toBe(false);
  });

  it("the gateway takes its API port from anywhere and nothing else; the scheduler takes nothing", () => {
    expect(reaches(policies, outside.huggingFace, gateway, 8080)).toBe(true);
    expect(reaches(policies, intruder, gateway, 8080)).toBe(true);
    expect(reaches(policies, intruder, gateway, 9229)).toBe(false);
    expect(reaches(policies, intruder, scheduler, 9091)).toBe(false);
    expect(reaches(policies, prometheus, scheduler, 9091)).toBe(false);
  });
});

describe("NetworkPolicies, configured", () => {
  it("metricsFrom lets Prometheus' namespace scrape the scheduler and the agents, and only their metrics ports", () => {
    const from = JSON.stringify([{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } } }]);
    const { policies, pods } = cluster(render(["--set-json", `networkPolicy.metricsFrom=${from}`]));
    expect(reaches(policies, pods.prometheus, pods.engine, 9092)).toBe(true);
    expect(reaches(policies, pods.prometheus, pods.scheduler, 9091)).toBe(true);
    expect(reaches(policies, pods.prometheus, pods.engine, 50051)).toBe(false);
    expect(reaches(policies, pods.intruder, pods.engine, 9092)).toBe(false);
  });

  it("gatewayFrom limits who reaches the gateway; download CIDRs and ports are the operator's", () => {
    const { policies, pods, outside } = cluster(
      render([
        "--set-json",
        `networkPolicy.gatewayFrom=${JSON.stringify([{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "ingress-nginx" } } }])}`,
        "--set-json",
        `networkPolicy.engineEgress.download=${JSON.stringify({ cidrs: ["18.154.0.0/16"], except: [], ports: [443, 8443] })}`,
      ]),
    );
    const ingress = { name: "ingress", namespace: "ingress-nginx", labels: {}, ip: "10.244.9.9" };
    expect(reaches(policies, ingress, pods.gateway, 8080)).toBe(true);
    expect(reaches(policies, pods.intruder, pods.gateway, 8080)).toBe(false);
    expect(reaches(policies, pods.engine, outside.huggingFace, 8443)).toBe(true);
    expect(reaches(policies, pods.engine, { name: "elsewhere", ip: "52.1.1.1" }, 443)).toBe(false);
  });

  it("networkPolicy.enabled=false renders none", () => {
    expect(render(["--set", "networkPolicy.enabled=false"]).filter((o) => o.kind === "NetworkPolicy")).toEqual([]);
  });
});

describe("NetworkPolicies with a batch gateway (batches.gateway.enabled)", () => {
  const objs = render(["--set", "batches.gateway.enabled=true", "--set", "storage.backend=s3", "--set", "storage.s3.bucket=infera-files"]);
  const { policies, pods } = cluster(objs);
  const batch: Endpoint = {
    name: "batch-gateway",
    namespace: NS,
    labels: templateOf(find(objs, "Deployment", "infera-batch-gateway")).metadata.labels,
    ip: "10.244.5.5",
  };

  it("the batch gateway reaches what a gateway does (agents, Redis, Postgres), and takes no requests", () => {
    expect(reaches(policies, batch, pods.engine, 50051)).toBe(true);
    expect(reaches(policies, batch, pods.redis, 6379)).toBe(true);
    expect(reaches(policies, batch, pods.postgres, 5432)).toBe(true);
    expect(reaches(policies, pods.intruder, batch, 8080)).toBe(false);
    expect(reaches(policies, pods.gateway, pods.engine, 50051)).toBe(true);
    expect(reaches(policies, pods.intruder, pods.engine, 50051)).toBe(false);
  });

  it("metricsFrom lets Prometheus scrape the batch gateway's /metrics port, as it does the gateway's; nobody else, and nobody without it", () => {
    const from = JSON.stringify([{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } } }]);
    const scraped = cluster(
      render([
        "--set",
        "batches.gateway.enabled=true",
        "--set",
        "storage.backend=s3",
        "--set",
        "storage.s3.bucket=infera-files",
        "--set-json",
        `networkPolicy.metricsFrom=${from}`,
      ]),
    );
    expect(reaches(scraped.policies, scraped.pods.prometheus, batch, 8080)).toBe(true);
    expect(reaches(scraped.policies, scraped.pods.prometheus, scraped.pods.gateway, 8080)).toBe(true);
    expect(reaches(scraped.policies, scraped.pods.prometheus, batch, 9091)).toBe(false);
    expect(reaches(scraped.policies, scraped.pods.intruder, batch, 8080)).toBe(false);
    expect(reaches(policies, pods.prometheus, batch, 8080)).toBe(false);
  });
});
