/**
 * The platform's own containers, run on this host from what the chart put in the real API
 * server (kwok marks their pods Running but runs nothing):
 *  - `startFromDeployment`: one replica of a chart Deployment (gateway, scheduler) as a host
 *    process, its init containers first (`migrate`), with the pod's environment resolved
 *    from the live Secrets and ConfigMaps, its ConfigMap volumes written to a folder (paths
 *    in its env follow), and, for a pod with a ServiceAccount token, a kubeconfig holding a
 *    token of that account (so the chart's RBAC is what the API server enforces);
 *  - `runHostEngines`: for each engine pod that kwok reports Ready, the engine (engine-sim,
 *    standing in for vLLM/TGI) and the worker agent from the pod's `agent` container env,
 *    stopped when the pod goes; what each writes goes to a file in the CRI log format that
 *    kwok serves as that container's log (pods/log, `kubectl logs`).
 * Only addresses change: everything binds 127.0.0.1 on ports of its own (pods would each
 * have an IP), and agents advertise 127.0.0.1:<port> — no pod IP is ever dialled.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { KubeCluster } from "./cluster.ts";
import { containerEnv, type PodLike } from "./pod-env.ts";
import { freePort } from "../ports.ts";
import { stopChild } from "../processes.ts";

const ROOT = fileURLToPath(new URL("../../../../", import.meta.url));

/** What each of the platform's images runs (its ENTRYPOINT), from the source tree. */
const PROGRAMS: Record<string, string> = {
  gateway: "services/gateway/src/main.ts",
  scheduler: "services/scheduler/src/main.ts",
  migrate: "packages/registry/src/cli.ts",
  agent: "services/worker-agent/src/main.ts",
  engine: "services/engine-sim/src/main.ts",
};

export interface HostProcess {
  name: string;
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/**
 * Appends what a container writes to `path` as a container runtime logs it (CRI format:
 * `<RFC3339 time> <stdout|stderr> F <line>`, one entry per complete line), what the kubelet
 * (here kwok) serves as its log.
 */
function criLogWriter(path: string): (stream: "stdout" | "stderr", chunk: string) => void {
  writeFileSync(path, "", { flag: "a" });
  const partial = { stdout: "", stderr: "" };
  return (stream, chunk) => {
    const parts = (partial[stream] + chunk).split("\n");
    partial[stream] = parts.pop() ?? "";
    if (parts.length > 0) appendFileSync(path, parts.map((l) => `${new Date().toISOString()} ${stream} F ${l}\n`).join(""));
  };
}

function startProgram(name: string, program: string, env: Record<string, string>, criLog?: string): HostProcess {
  let out = "";
  const child = spawn(process.execPath, ["--import", "tsx", program], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", NODE_ENV: "test", INFERA_PARENT_PID: String(process.pid), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const log = criLog ? criLogWriter(criLog) : undefined;
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
    log?.("stdout", d.toString());
  });
  child.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
    log?.("stderr", d.toString());
  });
  return { name, child, output: () => out, stop: () => stopChild(child, 15_000) };
}

interface DeploymentObject {
  metadata: { name: string; namespace: string };
  spec: {
    template: {
      metadata?: { labels?: Record<string, string> };
      spec: PodLike["spec"] & {
        initContainers?: PodLike["spec"]["containers"];
        containers: (PodLike["spec"]["containers"][number] & { volumeMounts?: { name: string; mountPath: string }[] })[];
        volumes?: { name: string; configMap?: { name: string } }[];
      };
    };
  };
}

export interface StartOptions {
  namespace: string;
  deployment: string;
  /** The container to run (and its program in PROGRAMS). */
  container: string;
  /** Variables to set over the pod's (addresses: PORT, METRICS_PORT, …). */
  overrides?: Record<string, string>;
}

/** One replica of a chart Deployment as host processes; resolves once its init containers succeeded. */
export async function startFromDeployment(cluster: KubeCluster, o: StartOptions): Promise<HostProcess> {
  const r = await cluster.api<DeploymentObject>("GET", `/apis/apps/v1/namespaces/${o.namespace}/deployments/${o.deployment}`);
  if (r.status !== 200) throw new Error(`Deployment ${o.namespace}/${o.deployment}: HTTP ${r.status} ${r.text}`);
  const podSpec = r.body.spec.template.spec;
  const dir = mkdtempSync(join(cluster.dir, `host-${o.container}-`));
  // ConfigMap volumes: their keys as files, at a folder standing for the mount path.
  const mounts = new Map<string, string>();
  for (const v of podSpec.volumes ?? []) {
    if (!v.configMap) continue;
    const cm = await cluster.api<{ data?: Record<string, string> }>("GET", `/api/v1/namespaces/${o.namespace}/configmaps/${v.configMap.name}`);
    if (cm.status !== 200) throw new Error(`ConfigMap ${v.configMap.name}: HTTP ${cm.status}`);
    const folder = join(dir, "volumes", v.name);
    mkdirSync(folder, { recursive: true });
    for (const [k, text] of Object.entries(cm.body.data ?? {})) writeFileSync(join(folder, k), text);
    mounts.set(v.name, folder);
  }
  const pod: PodLike = {
    metadata: { name: `${o.deployment}-host`, namespace: o.namespace, labels: r.body.spec.template.metadata?.labels },
    spec: { ...podSpec, containers: [...(podSpec.initContainers ?? []), ...podSpec.containers] },
  };
  const envOf = async (name: string): Promise<Record<string, string>> => {
    const env = await containerEnv(cluster, pod, name);
    const c = pod.spec.containers.find((x) => x.name === name) as DeploymentObject["spec"]["template"]["spec"]["containers"][number];
    for (const m of c.volumeMounts ?? []) {
      const folder = mounts.get(m.name);
      if (!folder) continue;
      for (const [k, v] of Object.entries(env)) if (v.startsWith(`${m.mountPath}/`)) env[k] = folder + v.slice(m.mountPath.length);
    }
    return env;
  };
  // Init containers, in order, each to success (the migrations).
  for (const init of podSpec.initContainers ?? []) {
    const program = PROGRAMS[init.name];
    if (!program) throw new Error(`no host program for init container ${init.name}`);
    const p = startProgram(init.name, program, await envOf(init.name));
    const code = await new Promise<number>((resolve) => p.child.once("exit", (c) => resolve(c ?? 1)));
    if (code !== 0) throw new Error(`init container ${init.name} of ${o.deployment} exited ${code}:\n${p.output()}`);
  }
  const program = PROGRAMS[o.container];
  if (!program) throw new Error(`no host program for container ${o.container}`);
  const env = await envOf(o.container);
  if (podSpec.automountServiceAccountToken !== false && podSpec.serviceAccountName) {
    env.KUBECONFIG = await cluster.serviceAccountKubeconfig(o.namespace, podSpec.serviceAccountName);
  }
  return startProgram(o.container, program, { ...env, ...o.overrides });
}

export interface HostEngines {
  /** Engine pods whose engine and agent run here now. */
  pods(): string[];
  /** The CRI log file of a pod's container ("engine", "agent") that kwok serves as its log. */
  logFile(pod: string, container: "engine" | "agent"): string;
  output(): string;
  stop(): Promise<void>;
}

interface EnginePod extends PodLike {
  metadata: PodLike["metadata"] & { deletionTimestamp?: string };
}

/** Engine-sim + worker agent on the host for every Ready engine pod in `namespace`. */
export function runHostEngines(cluster: KubeCluster, o: { namespace: string; simEnv?: Record<string, string> }): HostEngines {
  const running = new Map<string, { agent: HostProcess; engine: HostProcess }>();
  const starting = new Set<string>();
  let log = "";
  let busy = false;
  let stopped = false;

  const logDir = mkdtempSync(join(cluster.dir, "container-logs-"));
  const logFile = (pod: string, container: string) => join(logDir, `${pod}_${container}.log`);
  const start = async (pod: EnginePod) => {
    const name = pod.metadata.name;
    const [agentPort, metricsPort, enginePort] = [await freePort(), await freePort(), await freePort()];
    const agentEnv: Record<string, string> = {
      ...(await containerEnv(cluster, pod, "agent")),
      AGENT_HOST: "127.0.0.1",
      AGENT_PORT: String(agentPort),
      METRICS_PORT: String(metricsPort),
      ENGINE_URL: `http://127.0.0.1:${enginePort}`,
      ADVERTISE_ADDRESS: `127.0.0.1:${agentPort}`,
    };
    const engine = startProgram(
      `engine ${name}`,
      PROGRAMS.engine!,
      {
        HOST: "127.0.0.1",
        PORT: String(enginePort),
        SIM_MODEL: pod.metadata.annotations?.["infera.dev/served-model-name"] ?? agentEnv.SERVED_MODEL_NAME ?? "",
        SIM_MODE: agentEnv.ENGINE_KIND ?? "vllm",
        SIM_TTFT_MS: "0",
        SIM_ITL_MS: "0",
        SIM_JITTER: "0",
        SIM_PREFILL_US_PER_TOKEN: "0",
        LOG_LEVEL: "info",
        ...o.simEnv,
      },
      logFile(name, "engine"),
    );
    const agent = startProgram(`agent ${name}`, PROGRAMS.agent!, agentEnv, logFile(name, "agent"));
    running.set(name, { agent, engine });
    await cluster.serveContainerLogs(
      { namespace: pod.metadata.namespace, name, uid: pod.metadata.uid ?? "" },
      { engine: logFile(name, "engine"), agent: logFile(name, "agent") },
    );
    log += `started engine + agent for pod ${name} (agent 127.0.0.1:${agentPort})\n`;
  };

  const pass = async () => {
    const r = await cluster.api<{ items: EnginePod[] }>("GET", `/api/v1/namespaces/${o.namespace}/pods?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dinfera`);
    if (r.status !== 200) return;
    const live = new Set<string>();
    for (const pod of r.body.items) {
      const ready = pod.status?.phase === "Running" && pod.status.conditions?.some((c) => c.type === "Ready" && c.status === "True");
      if (!ready || pod.metadata.deletionTimestamp) continue;
      live.add(pod.metadata.name);
      if (running.has(pod.metadata.name) || starting.has(pod.metadata.name)) continue;
      starting.add(pod.metadata.name);
      await start(pod)
        .catch((err) => (log += `could not start pod ${pod.metadata.name}: ${String(err)}\n`))
        .finally(() => starting.delete(pod.metadata.name));
    }
    for (const [name, procs] of running) {
      if (live.has(name)) continue;
      running.delete(name);
      log += `pod ${name} is gone: stopping its engine and agent\n`;
      await Promise.all([procs.agent.stop(), procs.engine.stop()]);
    }
  };

  const timer = setInterval(() => {
    if (busy || stopped) return;
    busy = true;
    void pass()
      .catch((err) => (log += `pass failed: ${String(err)}\n`))
      .finally(() => (busy = false));
  }, 300);

  return {
    pods: () => [...running.keys()].sort(),
    logFile,
    output: () => log + [...running.values()].map((p) => p.agent.output()).join(""),
    async stop() {
      stopped = true;
      clearInterval(timer);
      while (busy) await new Promise((r) => setTimeout(r, 50));
      await Promise.all([...running.values()].flatMap((p) => [p.agent.stop(), p.engine.stop()]));
      running.clear();
    },
  };
}
