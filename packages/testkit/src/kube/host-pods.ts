/**
 * The kit as the kubelet of the pods whose containers can run on this host as they are: a
 * shell script in the curl image (the chart's `helm test` pods and its secrets Job). kwok's
 * stages leave those pods alone (kwok.yaml); once the real kube-scheduler has placed one,
 * this runs its command with the environment the kubelet would give it (pod-env.ts), its
 * ServiceAccount token mounted where a pod has it (a mount namespace: /run/secrets/… and a
 * private /tmp), then writes the pod's status (Succeeded or Failed, the exit code) to the
 * API server as a kubelet does. Service names have no DNS here: `services` maps the
 * "<name>:<port>" a pod dials to the host address that plays that Service.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, copyFileSync } from "node:fs";
import { join } from "node:path";
import type { KubeCluster } from "./cluster.ts";
import { containerEnv, MissingReference, type PodLike } from "./pod-env.ts";

export const HOST_RUN_IMAGE = "curlimages/curl:";

export interface HostPodRun {
  namespace: string;
  pod: string;
  exitCode: number;
  output: string;
}

export interface HostPods {
  /** Pods run so far (oldest first). */
  runs: HostPodRun[];
  /** Map "<service>:<port>" (as a pod dials it) to "127.0.0.1:<port>" on this host. */
  serve(service: string, hostAddress: string): void;
  stop(): Promise<void>;
}

const SA_DIR = "/run/secrets/kubernetes.io/serviceaccount";

export function runHostPods(cluster: KubeCluster, options: { namespaces?: readonly string[] } = {}): HostPods {
  const runs: HostPodRun[] = [];
  const services = new Map<string, string>();
  const started = new Set<string>();
  const inFlight = new Set<Promise<void>>();
  let stopped = false;
  let busy = false;

  const rewrite = (value: string): string => {
    let v = value;
    for (const [from, to] of services) v = v.split(`//${from}`).join(`//${to}`);
    return v;
  };

  const runOne = async (pod: PodLike): Promise<void> => {
    const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
    let env: Record<string, string>;
    const c = pod.spec.containers[0]!;
    try {
      env = await containerEnv(cluster, pod, c.name);
    } catch (err) {
      // A Secret it reads does not exist yet: the kubelet retries; so do we, next round.
      if (err instanceof MissingReference) {
        started.delete(key);
        return;
      }
      throw err;
    }
    for (const k of Object.keys(env)) env[k] = rewrite(env[k] ?? "");
    const dir = mkdtempSync(join(cluster.dir, "pod-"));
    const mounts: string[] = [];
    if (pod.spec.automountServiceAccountToken !== false) {
      const sa = pod.spec.serviceAccountName ?? "default";
      const r = await cluster.api<{ status?: { token?: string } }>("POST", `/api/v1/namespaces/${pod.metadata.namespace}/serviceaccounts/${sa}/token`, {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: { expirationSeconds: 3600, boundObjectRef: { apiVersion: "v1", kind: "Pod", name: pod.metadata.name, uid: pod.metadata.uid } },
      });
      if (!r.body.status?.token) throw new Error(`TokenRequest for ${key}: HTTP ${r.status}`);
      writeFileSync(join(dir, "token"), r.body.status.token);
      copyFileSync(cluster.certs.caCert, join(dir, "ca.crt"));
      writeFileSync(join(dir, "namespace"), pod.metadata.namespace);
      mounts.push(`mkdir -p ${SA_DIR} && cp "$POD_DIR"/token "$POD_DIR"/ca.crt "$POD_DIR"/namespace ${SA_DIR}/`);
    }
    // A mount namespace of its own: /run (where the token goes) and /tmp are private tmpfs.
    const setup = ["mount -t tmpfs tmpfs /run", ...mounts, "mount -t tmpfs tmpfs /tmp"].join(" && ");
    const argv = [...(c.command ?? []), ...(c.args ?? [])];
    // Not root: a user namespace of its own makes the mounts possible (-r maps us to its root).
    const ns = process.getuid?.() === 0 ? ["-m"] : ["-r", "-m"];
    const child = spawn("unshare", [...ns, "--propagation", "private", "sh", "-c", `${setup} && exec "$@"`, "pod", ...argv], {
      env: { PATH: "/usr/local/bin:/usr/bin:/bin", POD_DIR: dir, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const startedAt = new Date().toISOString();
    const exitCode = await new Promise<number>((resolve) => child.on("exit", (code, sig) => resolve(code ?? (sig ? 137 : 1))));
    rmSync(dir, { recursive: true, force: true });
    runs.push({ namespace: pod.metadata.namespace, pod: pod.metadata.name, exitCode, output });
    const now = new Date().toISOString();
    const phase = exitCode === 0 ? "Succeeded" : "Failed";
    await cluster.api(
      "PATCH",
      `/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}/status`,
      {
        status: {
          phase,
          conditions: [
            { type: "Initialized", status: "True", lastTransitionTime: now },
            { type: "Ready", status: "False", reason: "PodCompleted", lastTransitionTime: now },
            { type: "ContainersReady", status: "False", reason: "PodCompleted", lastTransitionTime: now },
          ],
          startTime: startedAt,
          containerStatuses: [
            {
              name: c.name,
              image: c.image,
              imageID: "",
              ready: false,
              restartCount: 0,
              started: false,
              state: { terminated: { exitCode, reason: exitCode === 0 ? "Completed" : "Error", startedAt, finishedAt: now } },
            },
          ],
        },
      },
      "application/merge-patch+json",
    );
  };

  const pass = async () => {
    const r = await cluster.api<{ items: PodLike[] }>("GET", "/api/v1/pods?fieldSelector=status.phase%3DPending");
    if (r.status !== 200) return;
    for (const pod of r.body.items) {
      const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
      if (started.has(key) || !pod.spec.nodeName) continue;
      if (options.namespaces && !options.namespaces.includes(pod.metadata.namespace)) continue;
      if (!pod.spec.containers.every((c) => c.image.startsWith(HOST_RUN_IMAGE))) continue;
      if (pod.spec.containers.length !== 1) throw new Error(`${key}: the kit runs one-container pods only`);
      started.add(key);
      const p: Promise<void> = runOne(pod)
        .catch((err) => {
          runs.push({ namespace: pod.metadata.namespace, pod: pod.metadata.name, exitCode: -1, output: String(err) });
        })
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
  };

  const timer = setInterval(() => {
    if (busy || stopped) return;
    busy = true;
    void pass()
      .catch(() => {})
      .finally(() => (busy = false));
  }, 300);

  return {
    runs,
    serve: (service, hostAddress) => services.set(service, hostAddress),
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all([...inFlight]);
    },
  };
}
