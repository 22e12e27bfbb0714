/**
 * A container's environment as the kubelet would give it, read from the real API server:
 * `value` (with `$(VAR)` expansion), `valueFrom.secretKeyRef` / `configMapKeyRef` (the live
 * objects), `fieldRef` (the pod's own fields). What cannot run here is replaced, and only
 * that: the pod IP is 127.0.0.1 (every process here shares the host's loopback), and the
 * API server is what KUBERNETES_SERVICE_HOST/PORT point at.
 */
import type { KubeCluster } from "./cluster.ts";

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
    fieldRef?: { fieldPath: string };
  };
}

export interface PodLike {
  metadata: { name: string; namespace: string; uid?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: {
    nodeName?: string;
    serviceAccountName?: string;
    automountServiceAccountToken?: boolean;
    containers: { name: string; image: string; command?: string[]; args?: string[]; env?: EnvVar[] }[];
  };
  status?: { phase?: string; podIP?: string; conditions?: { type: string; status: string }[] };
}

/** A Secret or ConfigMap a variable refers to does not exist yet: the kubelet would retry (CreateContainerConfigError). */
export class MissingReference extends Error {}

/** Expands `$(NAME)` with variables defined earlier, as Kubernetes does (`$$` escapes). */
export function expand(value: string, env: Record<string, string>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name: string | undefined) => (name === undefined ? "$" : (env[name] ?? m)));
}

export async function containerEnv(cluster: KubeCluster, pod: PodLike, container: string): Promise<Record<string, string>> {
  const c = pod.spec.containers.find((x) => x.name === container);
  if (!c) throw new Error(`pod ${pod.metadata.name} has no container ${container}`);
  const ns = pod.metadata.namespace;
  const env: Record<string, string> = {
    KUBERNETES_SERVICE_HOST: "127.0.0.1",
    KUBERNETES_SERVICE_PORT: new URL(cluster.server).port,
  };
  const data = new Map<string, Record<string, string> | undefined>();
  const read = async (kind: "secrets" | "configmaps", name: string): Promise<Record<string, string> | undefined> => {
    const key = `${kind}/${name}`;
    if (!data.has(key)) {
      const r = await cluster.api<{ data?: Record<string, string> }>("GET", `/api/v1/namespaces/${ns}/${kind}/${name}`);
      if (r.status === 404) data.set(key, undefined);
      else if (r.status !== 200) throw new Error(`reading ${key}: HTTP ${r.status} ${r.text}`);
      else {
        const d = r.body.data ?? {};
        data.set(key, kind === "secrets" ? Object.fromEntries(Object.entries(d).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")])) : d);
      }
    }
    return data.get(key);
  };
  for (const v of c.env ?? []) {
    if (v.value !== undefined) {
      env[v.name] = expand(v.value, env);
    } else if (v.valueFrom?.secretKeyRef || v.valueFrom?.configMapKeyRef) {
      const ref = (v.valueFrom.secretKeyRef ?? v.valueFrom.configMapKeyRef)!;
      const values = await read(v.valueFrom.secretKeyRef ? "secrets" : "configmaps", ref.name);
      const value = values?.[ref.key];
      if (value === undefined) {
        if (ref.optional) continue;
        throw new MissingReference(`${v.name}: ${v.valueFrom.secretKeyRef ? "Secret" : "ConfigMap"} ${ns}/${ref.name} key ${ref.key} does not exist`);
      }
      env[v.name] = value;
    } else if (v.valueFrom?.fieldRef) {
      const path = v.valueFrom.fieldRef.fieldPath;
      const field: Record<string, string | undefined> = {
        "metadata.name": pod.metadata.name,
        "metadata.namespace": ns,
        "metadata.uid": pod.metadata.uid,
        "spec.nodeName": pod.spec.nodeName,
        "spec.serviceAccountName": pod.spec.serviceAccountName,
        // Processes here share the host's loopback: that is this "pod's" address.
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
      };
      if (!(path in field)) throw new Error(`${v.name}: fieldRef ${path} is not supported by the kit`);
      env[v.name] = field[path] ?? "";
    }
  }
  return env;
}
