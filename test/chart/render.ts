/** The chart rendered by the pinned helm (`helm template`), as objects: what the light chart tests read. */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { loadAllYaml } from "@kubernetes/client-node";
import { helmBinary } from "@infera/testkit";

export const CHART = fileURLToPath(new URL("../../helm/infera", import.meta.url));

export interface Rendered {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  data?: Record<string, string>;
  spec?: Record<string, unknown>;
}

/** `helm template infera <chart> -n infera <args>`; the monitors' kinds are declared, as a cluster with the operator has them. */
export function render(args: string[] = []): Rendered[] {
  const out = execFileSync(
    helmBinary(),
    [
      "template",
      "infera",
      CHART,
      "-n",
      "infera",
      "--api-versions",
      "monitoring.coreos.com/v1/ServiceMonitor",
      "--api-versions",
      "monitoring.coreos.com/v1/PodMonitor",
      ...args,
    ],
    { encoding: "utf8" },
  );
  // client-node's loader names NetworkPolicy's `from` `_from` (its model's field): back to the wire name.
  const objs = JSON.parse(JSON.stringify(loadAllYaml(out)), function (key, value) {
    if (key === "_from") {
      (this as Record<string, unknown>).from = value;
      return undefined;
    }
    return value;
  }) as (Rendered | null)[];
  return objs.filter((o): o is Rendered => o !== null);
}

export function find(objs: readonly Rendered[], kind: string, name: string): Rendered {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`the chart rendered no ${kind}/${name}: ${objs.map((x) => `${x.kind}/${x.metadata.name}`).join(", ")}`);
  return o;
}

export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  securityContext?: Record<string, unknown>;
  ports?: { name?: string; containerPort: number }[];
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  securityContext?: Record<string, unknown>;
  automountServiceAccountToken?: boolean;
  volumes?: { name: string }[];
}

/** The pod spec of a workload (Deployment, StatefulSet, Job). */
export function podOf(o: Rendered): PodSpec {
  const spec = (o.spec?.template as { spec?: PodSpec } | undefined)?.spec;
  if (!spec) throw new Error(`${o.kind}/${o.metadata.name} has no pod template`);
  return spec;
}

/** The pod template of a workload: its labels and its whole spec (placement, resources). */
export function templateOf(o: Rendered): { metadata: { labels: Record<string, string> }; spec: Record<string, unknown> } {
  const t = o.spec?.template as { metadata?: { labels?: Record<string, string> }; spec?: Record<string, unknown> } | undefined;
  if (!t?.spec) throw new Error(`${o.kind}/${o.metadata.name} has no pod template`);
  return { metadata: { labels: t.metadata?.labels ?? {} }, spec: t.spec };
}
