/**
 * A real Kubernetes control plane for a test, on this machine, with no containers: etcd,
 * kube-apiserver, kube-controller-manager and kube-scheduler of the pinned release
 * (tools/kube), and kwok playing the kubelet of simulated nodes (GPU nodes included). Every
 * component listens on 127.0.0.1 only, with TLS from certificates made for this cluster;
 * nothing dials a pod IP (kwok never runs a container), and nodes' address is 127.0.0.1, where
 * kwok's kubelet server answers the API server's pods/log with the files `serveContainerLogs` names. `stop()` ends every process
 * and removes the folder; a watchdog ends them too if the test process dies first.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { makeClusterCerts, type ClusterCerts } from "./certs.ts";
import { helmBinary, kubeBinaries, kwokCrd, type KubeBinaries } from "./tools.ts";
import { freePort } from "../ports.ts";
import { waitFor } from "../wait.ts";

const KWOK_CONFIG = fileURLToPath(new URL("./kwok.yaml", import.meta.url));
/** The label kwok selects the nodes it manages by (kwok.yaml). */
export const KWOK_NODE_LABEL = { type: "kwok" } as const;

/** The cluster's default StorageClass; the kit is its provisioner (static hostPath PVs, never mounted). */
export const STORAGE_CLASS = "standard";
const PROVISIONER = "infera.test/hostpath";

export interface NodeSpec {
  name: string;
  labels?: Record<string, string>;
  taints?: { key: string; value?: string; effect: "NoSchedule" | "PreferNoSchedule" | "NoExecute" }[];
  /** Capacity (= allocatable): cpu, memory, pods, nvidia.com/gpu … */
  capacity: Record<string, string>;
}

export interface ApiResponse<T = unknown> {
  status: number;
  body: T;
  text: string;
}

export interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

export interface KubeCluster {
  /** https://127.0.0.1:<port> */
  server: string;
  /** An admin (system:masters) kubeconfig. */
  kubeconfig: string;
  dir: string;
  certs: ClusterCerts;
  binaries: KubeBinaries;
  helmPath: string;
  /** A request to the API server as the admin. `body` is sent as JSON (or `contentType`). */
  api<T = unknown>(method: string, path: string, body?: unknown, contentType?: string): Promise<ApiResponse<T>>;
  /** kubectl of the pinned release, as the admin (or with `kubeconfig`). */
  kubectl(args: string[], opts?: { input?: string; kubeconfig?: string }): Promise<Run>;
  helm(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<Run>;
  /** A kubeconfig holding a token of a ServiceAccount (TokenRequest): that account's RBAC applies. */
  serviceAccountKubeconfig(namespace: string, name: string): Promise<string>;
  addNodes(nodes: readonly NodeSpec[]): Promise<void>;
  /**
   * What a pod's containers write, as the kubelet would serve it (`kubectl logs`, the API
   * server's pods/log): a kwok Logs object naming, per container, a file in the CRI log format
   * (`<RFC3339 time> stdout F <line>`) that kwok's kubelet server reads (and follows). Owned by
   * the pod, so it goes with it.
   */
  serveContainerLogs(pod: { namespace: string; name: string; uid: string }, files: Record<string, string>): Promise<void>;
  /** The last lines of a component's log (etcd, kube-apiserver, …), for failure messages. */
  logTail(component: string, lines?: number): string;
  stop(): Promise<void>;
}

interface Component {
  name: string;
  child: ChildProcess;
  exited: Promise<void>;
}

function kubeconfigJson(server: string, ca: string, user: Record<string, string>): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "infera-test", cluster: { server, "certificate-authority": ca } }],
    users: [{ name: "user", user }],
    contexts: [{ name: "infera-test", context: { cluster: "infera-test", user: "user" } }],
    "current-context": "infera-test",
  });
}

export async function startKube(options: { label: string; nodes?: readonly NodeSpec[] }): Promise<KubeCluster> {
  const binaries = kubeBinaries();
  const helmPath = helmBinary();
  const dir = mkdtempSync(join(tmpdir(), `infera-kube-${options.label.replace(/[^a-z0-9]/gi, "").slice(0, 12)}-`));
  const certs = makeClusterCerts(dir);
  const [etcdPort, etcdPeerPort, apiPort, kwokPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const server = `https://127.0.0.1:${apiPort}`;
  const components: Component[] = [];
  let provisioner: NodeJS.Timeout | undefined;
  const logFile = (name: string) => join(dir, `${name}.log`);

  const kubeconfig = join(dir, "admin.kubeconfig");
  writeFileSync(kubeconfig, kubeconfigJson(server, certs.caCert, { "client-certificate": certs.adminCert, "client-key": certs.adminKey }));
  const kcmKubeconfig = join(dir, "controller-manager.kubeconfig");
  writeFileSync(
    kcmKubeconfig,
    kubeconfigJson(server, certs.caCert, { "client-certificate": certs.controllerManagerCert, "client-key": certs.controllerManagerKey }),
  );
  const schedKubeconfig = join(dir, "scheduler.kubeconfig");
  writeFileSync(schedKubeconfig, kubeconfigJson(server, certs.caCert, { "client-certificate": certs.schedulerCert, "client-key": certs.schedulerKey }));
  const kwokConfig = join(dir, "kwok.yaml");
  copyFileSync(KWOK_CONFIG, kwokConfig);

  // The watchdog: if this process dies without stop(), it ends the cluster's process groups.
  const pgids = join(dir, "pgids");
  writeFileSync(pgids, "");
  const watchdog = spawn(
    "sh",
    [
      "-c",
      `while kill -0 ${process.pid} 2>/dev/null && [ -d "${dir}" ]; do sleep 1; done; for g in $(cat "${pgids}" 2>/dev/null); do kill -TERM -$g 2>/dev/null; done; sleep 3; for g in $(cat "${pgids}" 2>/dev/null); do kill -KILL -$g 2>/dev/null; done; rm -rf "${dir}"`,
    ],
    { detached: true, stdio: "ignore" },
  );
  watchdog.unref();

  const launch = (name: string, bin: string, args: string[]): Component => {
    const fd = openSync(logFile(name), "a");
    // Its own process group (detached), so the watchdog can end it and whatever it started.
    const child = spawn(bin, args, { cwd: dir, detached: true, stdio: ["ignore", fd, fd], env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir } });
    closeSync(fd);
    if (child.pid) writeFileSync(pgids, `${child.pid}\n`, { flag: "a" });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const c = { name, child, exited };
    components.push(c);
    return c;
  };

  const logTail = (component: string, lines = 40): string => {
    try {
      return readFileSync(logFile(component), "utf8").trim().split("\n").slice(-lines).join("\n");
    } catch {
      return "";
    }
  };

  const api = <T>(method: string, path: string, body?: unknown, contentType = "application/json"): Promise<ApiResponse<T>> =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
      const req = httpsRequest(
        {
          host: "127.0.0.1",
          port: apiPort,
          method,
          path,
          ca: readFileSync(certs.caCert),
          cert: readFileSync(certs.adminCert),
          key: readFileSync(certs.adminKey),
          headers: {
            accept: "application/json",
            ...(payload !== undefined ? { "content-type": contentType, "content-length": Buffer.byteLength(payload) } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            let parsed: unknown = text;
            try {
              parsed = JSON.parse(text);
            } catch {
              // not JSON (readyz answers text)
            }
            resolve({ status: res.statusCode ?? 0, body: parsed as T, text });
          });
        },
      );
      req.on("error", reject);
      req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${path}: no answer in 30 s`)));
      if (payload !== undefined) req.write(payload);
      req.end();
    });

  // Asynchronous: the kit's own loops (the storage provisioner, host pods) keep running meanwhile.
  const run = (bin: string, args: string[], opts: { input?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<Run> =>
    new Promise((resolve, reject) => {
      const child = spawn(bin, args, { env: { ...process.env, ...opts.env }, stdio: ["pipe", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const t = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 300_000);
      child.on("error", reject);
      child.on("close", (code, signal) => {
        clearTimeout(t);
        resolve({ status: code ?? (signal ? 137 : 1), stdout, stderr });
      });
      child.stdin.end(opts.input ?? "");
    });

  const helmHome = join(dir, "helm");
  mkdirSync(helmHome, { recursive: true });
  const cluster: KubeCluster = {
    server,
    kubeconfig,
    dir,
    certs,
    binaries,
    helmPath,
    api,
    kubectl: (args, opts = {}) => run(binaries.kubectl, [`--kubeconfig=${opts.kubeconfig ?? kubeconfig}`, ...args], { input: opts.input }),
    helm: (args, opts = {}) =>
      run(helmPath, [`--kubeconfig=${kubeconfig}`, ...args], {
        input: opts.input,
        timeoutMs: opts.timeoutMs,
        // Its own cache/config/data: nothing of the user's helm setup leaks in.
        env: { HELM_CACHE_HOME: join(helmHome, "cache"), HELM_CONFIG_HOME: join(helmHome, "config"), HELM_DATA_HOME: join(helmHome, "data") },
      }),
    async serviceAccountKubeconfig(namespace, name) {
      const r = await api<{ status?: { token?: string }; message?: string }>("POST", `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: { expirationSeconds: 7200 },
      });
      const token = r.body.status?.token;
      if (r.status !== 201 || !token) throw new Error(`TokenRequest for ${namespace}/${name}: HTTP ${r.status} ${r.text}`);
      const path = join(dir, `sa-${namespace}-${name}-${randomBytes(3).toString("hex")}.kubeconfig`);
      writeFileSync(path, kubeconfigJson(server, certs.caCert, { token }));
      return path;
    },
    async addNodes(nodes) {
      for (const n of nodes) {
        const r = await api("POST", "/api/v1/nodes", {
          apiVersion: "v1",
          kind: "Node",
          metadata: {
            name: n.name,
            labels: { ...n.labels, ...KWOK_NODE_LABEL, "kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64" },
            annotations: { "node.alpha.kubernetes.io/ttl": "0" },
          },
          spec: { taints: n.taints ?? [] },
          status: { capacity: n.capacity, allocatable: n.capacity },
        });
        if (r.status !== 201) throw new Error(`creating node ${n.name}: HTTP ${r.status} ${r.text}`);
      }
      await waitFor(
        `nodes ${nodes.map((n) => n.name).join(", ")} Ready (kwok)`,
        async () => {
          const r = await api<{ items: { metadata: { name: string }; status?: { conditions?: { type: string; status: string }[] } }[] }>(
            "GET",
            "/api/v1/nodes",
          );
          const ready = new Set(
            r.body.items.filter((i) => i.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")).map((i) => i.metadata.name),
          );
          return nodes.every((n) => ready.has(n.name));
        },
        { timeoutMs: 60_000, intervalMs: 200, diagnose: () => logTail("kwok") },
      );
    },
    async serveContainerLogs(pod, files) {
      const r = await api("POST", `/apis/kwok.x-k8s.io/v1alpha1/namespaces/${pod.namespace}/logs`, {
        apiVersion: "kwok.x-k8s.io/v1alpha1",
        kind: "Logs",
        metadata: { name: pod.name, namespace: pod.namespace, ownerReferences: [{ apiVersion: "v1", kind: "Pod", name: pod.name, uid: pod.uid }] },
        spec: { logs: Object.entries(files).map(([container, logsFile]) => ({ containers: [container], logsFile, follow: true })) },
      });
      if (r.status !== 201) throw new Error(`kwok Logs for pod ${pod.namespace}/${pod.name}: HTTP ${r.status} ${r.text}`);
    },
    logTail,
    async stop() {
      if (provisioner) clearInterval(provisioner);
      // Reverse order: kwok and the controllers first, etcd last.
      for (const c of [...components].reverse()) {
        if (c.child.exitCode !== null || c.child.signalCode !== null) continue;
        try {
          process.kill(-(c.child.pid ?? 0), "SIGTERM");
        } catch {
          // already gone
        }
        const t = setTimeout(() => {
          try {
            process.kill(-(c.child.pid ?? 0), "SIGKILL");
          } catch {
            // already gone
          }
        }, 10_000);
        await c.exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };

  try {
    launch("etcd", binaries.etcd, [
      "--name=infera-test",
      `--data-dir=${join(dir, "etcd-data")}`,
      `--listen-client-urls=https://127.0.0.1:${etcdPort}`,
      `--advertise-client-urls=https://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=https://127.0.0.1:${etcdPeerPort}`,
      `--initial-advertise-peer-urls=https://127.0.0.1:${etcdPeerPort}`,
      `--initial-cluster=infera-test=https://127.0.0.1:${etcdPeerPort}`,
      `--cert-file=${certs.etcdCert}`,
      `--key-file=${certs.etcdKey}`,
      `--trusted-ca-file=${certs.caCert}`,
      "--client-cert-auth",
      `--peer-cert-file=${certs.etcdCert}`,
      `--peer-key-file=${certs.etcdKey}`,
      `--peer-trusted-ca-file=${certs.caCert}`,
      "--peer-client-cert-auth",
      // A test's data: no fsync (the machine's disk is shared), small quota.
      "--unsafe-no-fsync",
      "--quota-backend-bytes=1073741824",
      "--log-level=warn",
    ]);
    launch("kube-apiserver", binaries.kubeApiserver, [
      `--etcd-servers=https://127.0.0.1:${etcdPort}`,
      `--etcd-cafile=${certs.caCert}`,
      `--etcd-certfile=${certs.apiserverEtcdCert}`,
      `--etcd-keyfile=${certs.apiserverEtcdKey}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${apiPort}`,
      `--tls-cert-file=${certs.apiserverCert}`,
      `--tls-private-key-file=${certs.apiserverKey}`,
      `--client-ca-file=${certs.caCert}`,
      `--cert-dir=${join(dir, "apiserver-certs")}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${certs.saPub}`,
      `--service-account-signing-key-file=${certs.saKey}`,
      "--service-cluster-ip-range=10.96.0.0/16",
      "--authorization-mode=Node,RBAC",
      "--allow-privileged=true",
      // The "kubernetes" Service's endpoint would be 127.0.0.1, which Endpoints refuse.
      "--endpoint-reconciler-type=none",
      // Nodes' kubelet (pods/log, exec) is kwok's server: reached at the node's InternalIP
      // (127.0.0.1, kwok.yaml) and port (daemonEndpoints), its certificate signed by the kit's CA.
      "--kubelet-preferred-address-types=InternalIP",
      `--kubelet-certificate-authority=${certs.caCert}`,
      "--profiling=false",
      "--v=0",
    ]);
    await waitFor("kube-apiserver /readyz", async () => (await api("GET", "/readyz")).status === 200, {
      timeoutMs: 120_000,
      intervalMs: 200,
      diagnose: () => `${logTail("kube-apiserver")}\n--- etcd\n${logTail("etcd")}`,
    });
    launch("kube-controller-manager", binaries.kubeControllerManager, [
      `--kubeconfig=${kcmKubeconfig}`,
      `--authentication-kubeconfig=${kcmKubeconfig}`,
      `--authorization-kubeconfig=${kcmKubeconfig}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${await freePort()}`,
      `--cert-dir=${join(dir, "kcm-certs")}`,
      "--leader-elect=false",
      "--use-service-account-credentials=true",
      `--service-account-private-key-file=${certs.saKey}`,
      `--root-ca-file=${certs.caCert}`,
      `--cluster-signing-cert-file=${certs.caCert}`,
      `--cluster-signing-key-file=${certs.caKey}`,
      "--cluster-name=infera-test",
      "--profiling=false",
      "--v=0",
    ]);
    launch("kube-scheduler", binaries.kubeScheduler, [
      `--kubeconfig=${schedKubeconfig}`,
      `--authentication-kubeconfig=${schedKubeconfig}`,
      `--authorization-kubeconfig=${schedKubeconfig}`,
      "--bind-address=127.0.0.1",
      `--secure-port=${await freePort()}`,
      "--leader-elect=false",
      "--profiling=false",
      "--v=0",
    ]);
    // kwok's Logs API (what it serves as containers' logs) before kwok watches it.
    const crd = await run(binaries.kubectl, [`--kubeconfig=${kubeconfig}`, "apply", "--server-side", "-f", kwokCrd("logs")]);
    if (crd.status !== 0) throw new Error(`installing kwok's Logs CRD: ${crd.stderr}`);
    const established = await run(binaries.kubectl, [
      `--kubeconfig=${kubeconfig}`,
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      "crd/logs.kwok.x-k8s.io",
    ]);
    if (established.status !== 0) throw new Error(`kwok's Logs CRD: ${established.stderr}`);
    launch("kwok", binaries.kwok, [
      `--kubeconfig=${kubeconfig}`,
      `--config=${kwokConfig}`,
      // Its kubelet server, on loopback with the kit's certificate; nodes advertise this port.
      `--server-address=127.0.0.1:${kwokPort}`,
      `--node-port=${kwokPort}`,
      `--tls-cert-file=${certs.kwokCert}`,
      `--tls-private-key-file=${certs.kwokKey}`,
      "--enable-crds=Logs",
    ]);
    // The controller manager is up once its service-account controller made "default".
    await waitFor(
      "kube-controller-manager (the default ServiceAccount)",
      async () => (await api("GET", "/api/v1/namespaces/default/serviceaccounts/default")).status === 200,
      { timeoutMs: 120_000, intervalMs: 200, diagnose: () => logTail("kube-controller-manager") },
    );
    await provideStorage(api, dir);
    let busy = false;
    provisioner = setInterval(() => {
      if (busy) return;
      busy = true;
      void provisionClaims(api, dir)
        .catch(() => {})
        .finally(() => (busy = false));
    }, 500);
    if (options.nodes?.length) await cluster.addNodes(options.nodes);
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

type Api = KubeCluster["api"];

/** A default StorageClass whose provisioner is the kit (provisionClaims), as a cluster's CSI driver would be. */
async function provideStorage(api: Api, dir: string): Promise<void> {
  const r = await api("POST", "/apis/storage.k8s.io/v1/storageclasses", {
    apiVersion: "storage.k8s.io/v1",
    kind: "StorageClass",
    metadata: { name: STORAGE_CLASS, annotations: { "storageclass.kubernetes.io/is-default-class": "true" } },
    provisioner: PROVISIONER,
    reclaimPolicy: "Delete",
    volumeBindingMode: "Immediate",
  });
  if (r.status !== 201) throw new Error(`creating the StorageClass: HTTP ${r.status} ${r.text}`);
  mkdirSync(join(dir, "volumes"), { recursive: true });
}

interface Claim {
  metadata: { name: string; namespace: string; uid: string };
  spec: { storageClassName?: string; accessModes?: string[]; resources?: { requests?: { storage?: string } }; volumeName?: string };
  status?: { phase?: string };
}

/**
 * One pass of the kit's provisioner, doing what an external provisioner does: a PV for each
 * Pending claim of the default class, and a released PV of its own deleted (reclaim Delete).
 */
async function provisionClaims(api: Api, dir: string): Promise<void> {
  const pvs = await api<{ items: { metadata: { name: string; annotations?: Record<string, string> }; status?: { phase?: string } }[] }>(
    "GET",
    "/api/v1/persistentvolumes",
  );
  for (const pv of pvs.status === 200 ? pvs.body.items : []) {
    if (pv.status?.phase === "Released" && pv.metadata.annotations?.["pv.kubernetes.io/provisioned-by"] === PROVISIONER) {
      await api("DELETE", `/api/v1/persistentvolumes/${pv.metadata.name}`);
    }
  }
  const r = await api<{ items: Claim[] }>("GET", "/api/v1/persistentvolumeclaims");
  if (r.status !== 200) return;
  for (const c of r.body.items) {
    if (c.spec.volumeName || c.status?.phase !== "Pending" || c.spec.storageClassName !== STORAGE_CLASS) continue;
    const name = `pvc-${c.metadata.uid}`;
    await api("POST", "/api/v1/persistentvolumes", {
      apiVersion: "v1",
      kind: "PersistentVolume",
      metadata: { name, annotations: { "pv.kubernetes.io/provisioned-by": PROVISIONER } },
      spec: {
        capacity: { storage: c.spec.resources?.requests?.storage ?? "1Gi" },
        accessModes: c.spec.accessModes ?? ["ReadWriteOnce"],
        persistentVolumeReclaimPolicy: "Delete",
        storageClassName: STORAGE_CLASS,
        claimRef: { apiVersion: "v1", kind: "PersistentVolumeClaim", namespace: c.metadata.namespace, name: c.metadata.name, uid: c.metadata.uid },
        // Never mounted: kwok runs no container.
        hostPath: { path: join(dir, "volumes", name), type: "DirectoryOrCreate" },
      },
    });
  }
}
