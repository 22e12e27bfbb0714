/**
 * The binaries a Kubernetes test needs, from the per-machine cache (built once, reused by
 * every worktree and CI run): the control plane from tools/kube/build.sh, and helm from
 * `go install` into ${XDG_CACHE_HOME:-~/.cache}/infera/tools/helm-<version>/ (the path
 * deploy/chart-check.sh uses). Missing ones are built here, which takes long the first time
 * on a machine (the control plane: about 10 minutes on 2 cores).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../../../", import.meta.url));
/** The helm release the chart is checked with: Chart.yaml's infera.dev/helm-version (deploy/chart-check.sh uses it too). */
export const HELM_VERSION = (() => {
  const v = /^\s*infera\.dev\/helm-version:\s*(\S+)/m.exec(readFileSync(join(ROOT, "helm/infera/Chart.yaml"), "utf8"))?.[1];
  if (!v) throw new Error("helm/infera/Chart.yaml has no infera.dev/helm-version annotation");
  return v;
})();

export interface KubeBinaries {
  dir: string;
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  kubectl: string;
  kwok: string;
}

function cacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "infera");
}

function goBinary(): string {
  const onPath = spawnSync("sh", ["-c", "command -v go"], { encoding: "utf8" }).stdout.trim();
  return process.env.GO || onPath || "/usr/local/go/bin/go";
}

let binaries: KubeBinaries | undefined;

/** The control plane binaries (tools/kube/build.sh builds them when missing). */
export function kubeBinaries(): KubeBinaries {
  if (binaries) return binaries;
  const out = execFileSync("bash", [join(ROOT, "tools/kube/build.sh")], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  const dir = out.trim().split("\n").pop() ?? "";
  const b: KubeBinaries = {
    dir,
    etcd: join(dir, "etcd"),
    kubeApiserver: join(dir, "kube-apiserver"),
    kubeControllerManager: join(dir, "kube-controller-manager"),
    kubeScheduler: join(dir, "kube-scheduler"),
    kubectl: join(dir, "kubectl"),
    kwok: join(dir, "kwok"),
  };
  for (const [name, path] of Object.entries(b)) {
    if (name !== "dir" && !existsSync(path)) throw new Error(`tools/kube/build.sh printed ${dir}, but ${path} is missing`);
  }
  binaries = b;
  return b;
}

/** helm HELM_VERSION, installed with `go install` into the machine's cache when missing. */
export function helmBinary(): string {
  const dir = join(cacheDir(), "tools", `helm-${HELM_VERSION}`);
  const helm = join(dir, "helm");
  if (!existsSync(helm)) {
    mkdirSync(dir, { recursive: true });
    execFileSync(goBinary(), ["install", `helm.sh/helm/v3/cmd/helm@${HELM_VERSION}`], {
      env: { ...process.env, GOBIN: dir },
      stdio: ["ignore", "inherit", "inherit"],
    });
  }
  return helm;
}

/** The Prometheus Operator release whose CRDs the tests install (its Go module holds them). */
export const PROMETHEUS_OPERATOR_VERSION = "v0.85.0";

/** ServiceMonitor and PodMonitor CRD files of the Prometheus Operator, from the Go module cache (downloaded once). */
export function prometheusOperatorCrds(): string[] {
  const out = execFileSync(goBinary(), ["mod", "download", "-json", `github.com/prometheus-operator/prometheus-operator@${PROMETHEUS_OPERATOR_VERSION}`], {
    encoding: "utf8",
    cwd: ROOT,
    env: { ...process.env, GOFLAGS: "-mod=mod" },
  });
  const dir = (JSON.parse(out) as { Dir?: string }).Dir;
  if (!dir) throw new Error(`go mod download of prometheus-operator ${PROMETHEUS_OPERATOR_VERSION} gave no folder:\n${out}`);
  return ["servicemonitors", "podmonitors"].map((k) => join(dir, "example/prometheus-operator-crd", `monitoring.coreos.com_${k}.yaml`));
}

/** A CRD of kwok's own API (kwok.x-k8s.io: Logs, …) from the kwok module tools/kube/go.mod pins (its Go module cache). */
export function kwokCrd(plural: string): string {
  const out = execFileSync(goBinary(), ["mod", "download", "-json", "sigs.k8s.io/kwok"], { encoding: "utf8", cwd: join(ROOT, "tools/kube") });
  const dir = (JSON.parse(out) as { Dir?: string }).Dir;
  if (!dir) throw new Error(`go mod download of sigs.k8s.io/kwok gave no folder:\n${out}`);
  return join(dir, "kustomize/crd/bases", `kwok.x-k8s.io_${plural}.yaml`);
}
