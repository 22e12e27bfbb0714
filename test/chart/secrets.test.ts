/**
 * Secrets under GitOps: a render has nothing random in it (two renders are the same bytes,
 * so `helm template | kubectl apply` and Argo CD never rotate a Secret), every Secret a
 * platform pod reads is one the secrets Job makes or one the operator names, and a token no
 * one would make is refused at render time, naming the value.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { helmBinary } from "@infera/testkit";
import { buildEngineDeployment } from "../../services/scheduler/src/runtime/kubernetes-manifest.ts";
import { parseEnginePodTemplate } from "../../services/scheduler/src/runtime/kubernetes-template.ts";
import { CHART, find, podOf, render } from "./render.ts";

const template = (args: string[] = []) => execFileSync(helmBinary(), ["template", "infera", CHART, "-n", "infera", ...args], { encoding: "utf8" });

describe("the chart's Secrets", () => {
  it("two renders are byte-identical: no generated value is in a template", () => {
    expect(template()).toBe(template());
  });

  it("every Secret a pod reads is made by the secrets Job (once, if missing), or is the operator's", () => {
    const objs = render();
    const job = objs.find((o) => o.kind === "Job" && o.metadata.name.startsWith("infera-secrets-"));
    const script = podOf(job!).containers[0]!.args?.join("\n") ?? "";
    const made = [...script.matchAll(/^\s*create (\S+) /gm)].map((m) => m[1]);
    expect(made.sort()).toEqual(["infera-admin-key", "infera-agent-token", "infera-postgres", "infera-redis-auth", "infera-secrets-key"]);
    const read = new Set<string>();
    for (const o of objs.filter((x) => ["Deployment", "StatefulSet"].includes(x.kind))) {
      const pod = podOf(o);
      for (const c of [...(pod.initContainers ?? []), ...pod.containers])
        for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef) read.add(e.valueFrom.secretKeyRef.name);
    }
    const engineTemplate = objs.find((o) => o.metadata.name === "infera-engine-pod-template")?.data?.["engine-pod-template.yaml"] ?? "";
    for (const name of engineTemplate.matchAll(/secretKeyRef:\s*\n\s*name: (\S+)/g)) read.add(name[1]!);
    expect([...read].sort()).toEqual(["infera-admin-key", "infera-agent-token", "infera-postgres", "infera-redis-auth", "infera-secrets-key"]);
    // No Secret holds a generated value in the render itself.
    expect(objs.filter((o) => o.kind === "Secret")).toEqual([]);
  });

  it("with the operator's Secrets (production profile) nothing is generated: no Job", () => {
    const objs = render(["-f", `${CHART}/values-gpu-production.yaml`]);
    expect(objs.filter((o) => o.kind === "Job" || o.kind === "Secret")).toEqual([]);
  });

  it("no agent token, neither generated nor named: refused at render, saying what to set", () => {
    const r = spawnSync(helmBinary(), ["template", "infera", CHART, "--set", "agent.auth.create=false"], { encoding: "utf8" });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("agent.auth: set create=true (the secrets Job generates the token) or existingSecret");
  });

  it("agent.tls: engine pods (as the driver builds them) and gateways mount the same Secret; agents serve it and require client certificates, gateways trust its CA for the release's name", () => {
    const objs = render(["--set", "agent.tls.enabled=true", "--set", "agent.tls.existingSecret=infera-agent-tls"]);
    const template = parseEnginePodTemplate(find(objs, "ConfigMap", "infera-engine-pod-template").data?.["engine-pod-template.yaml"] ?? "", "chart");
    const spec = {
      deploymentId: "d",
      servedModelName: "m",
      task: "chat",
      engine: "vllm",
      gpu: "H100-80GB",
      numGpus: 1,
      maxBatchSize: 8,
      hf: { repo: "o/m" },
      extraArgs: [],
    };
    const pod = buildEngineDeployment(spec as Parameters<typeof buildEngineDeployment>[0], 1, template, {
      namespace: "infera",
      gpuTypes: [{ name: "H100-80GB", count: 8 }],
    }).spec?.template.spec;
    const agent = pod?.containers.find((c) => c.name === "agent");
    const gateway = podOf(find(objs, "Deployment", "infera-gateway"));
    const env = (c: { env?: { name: string; value?: string }[] } | undefined) =>
      Object.fromEntries((c?.env ?? []).filter((e) => e.name.startsWith("AGENT_TLS_")).map((e) => [e.name, e.value]));
    expect(env(agent)).toEqual({
      AGENT_TLS_CERT_FILE: "/etc/infera/agent-tls/tls.crt",
      AGENT_TLS_KEY_FILE: "/etc/infera/agent-tls/tls.key",
      AGENT_TLS_CLIENT_CA_FILE: "/etc/infera/agent-tls/ca.crt",
    });
    expect(env(gateway.containers[0])).toEqual({
      AGENT_TLS_CA_FILE: "/etc/infera/agent-tls/ca.crt",
      AGENT_TLS_SERVER_NAME: "infera-agent",
      AGENT_TLS_CLIENT_CERT_FILE: "/etc/infera/agent-tls/tls.crt",
      AGENT_TLS_CLIENT_KEY_FILE: "/etc/infera/agent-tls/tls.key",
    });
    expect(pod?.volumes).toContainEqual({ name: "agent-tls", secret: { secretName: "infera-agent-tls" } });
    expect(gateway.volumes).toContainEqual({ name: "agent-tls", secret: { secretName: "infera-agent-tls" } });
    // Off by default: nothing of it rendered.
    expect(JSON.stringify(render())).not.toContain("AGENT_TLS_");
  });
});
