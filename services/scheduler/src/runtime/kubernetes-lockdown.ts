/**
 * What every engine pod the driver makes is held to, whatever the chart's template says or a
 * deployment asks for: no service-account token, the runtime's default seccomp profile, and
 * containers that run as a non-root user with no privilege escalation and no capabilities.
 * The engine binds 127.0.0.1 (engineBindArgs), so only its agent sidecar reaches it; HOME and
 * the Hugging Face caches point at writable volumes, which the vLLM, TGI and TEI images need
 * when they do not run as root.
 */
import type { V1Container, V1EnvVar, V1PodSpec, V1SecurityContext } from "@kubernetes/client-node";
import type { EngineKind } from "./driver.ts";

/** The user engine containers run as when the template names none (vLLM's and TGI's images work as any user with these paths). */
export const ENGINE_UID = 1000;
/** The engine's address inside its pod: reachable from its agent sidecar only. */
export const ENGINE_HOST = "127.0.0.1";
const HOME = "/home/engine";
const HOME_VOLUME = "engine-home";

/** The engine's listen-address flag per engine kind (an image server is configured by its own image). */
export function engineBindArgs(engine: EngineKind): string[] {
  switch (engine) {
    case "vllm":
      return ["--host", ENGINE_HOST];
    case "tgi":
    case "tei":
      return ["--hostname", ENGINE_HOST];
    case "image":
      return [];
  }
}

function lockContainer(c: V1Container, uid: number): void {
  const own: V1SecurityContext = c.securityContext ?? {};
  c.securityContext = {
    ...own,
    runAsNonRoot: true,
    // A template's own non-root user stays (engine-sim's 10001, the agent's); root never.
    runAsUser: own.runAsUser && own.runAsUser > 0 ? own.runAsUser : uid,
    runAsGroup: own.runAsGroup && own.runAsGroup > 0 ? own.runAsGroup : uid,
    allowPrivilegeEscalation: false,
    privileged: false,
    capabilities: { drop: ["ALL"] },
    seccompProfile: { type: "RuntimeDefault" },
  };
}

/** `env` with `vars` set: each replaces a variable of the same name, at the end (in order, for `$(VAR)` expansion). */
export function upsertEnv(env: V1EnvVar[], vars: readonly V1EnvVar[]): V1EnvVar[] {
  const names = new Set(vars.map((v) => v.name));
  return [...env.filter((v) => !names.has(v.name)), ...vars];
}

/**
 * Locks down an engine pod spec in place. The hub caches go under the engine's HF_HOME (the
 * model cache volume), HOME and the other caches to an emptyDir.
 */
export function lockDownEnginePod(pod: V1PodSpec): void {
  const uid = ENGINE_UID;
  pod.automountServiceAccountToken = false;
  pod.hostNetwork = false;
  pod.hostPID = false;
  pod.hostIPC = false;
  pod.securityContext = {
    ...pod.securityContext,
    runAsNonRoot: true,
    fsGroup: pod.securityContext?.fsGroup ?? uid,
    seccompProfile: { type: "RuntimeDefault" },
  };
  for (const c of [...(pod.initContainers ?? []), ...pod.containers]) lockContainer(c, uid);

  const engine = pod.containers.find((c) => c.name === "engine");
  if (!engine) return;
  const hfHome = engine.env?.find((e) => e.name === "HF_HOME")?.value;
  engine.env = upsertEnv(engine.env ?? [], [
    { name: "HOME", value: HOME },
    // Python's getpass (torch's compile caches) needs a name for a user without a passwd entry.
    { name: "USER", value: "engine" },
    { name: "LOGNAME", value: "engine" },
    { name: "XDG_CACHE_HOME", value: `${HOME}/.cache` },
    // The images set their own hub cache (TGI and TEI: /data, root's): the model cache volume instead.
    ...(hfHome
      ? [
          { name: "HF_HUB_CACHE", value: `${hfHome}/hub` },
          { name: "HUGGINGFACE_HUB_CACHE", value: `${hfHome}/hub` },
        ]
      : []),
  ]);
  if (!(pod.volumes ?? []).some((v) => v.name === HOME_VOLUME)) pod.volumes = [...(pod.volumes ?? []), { name: HOME_VOLUME, emptyDir: {} }];
  if (!(engine.volumeMounts ?? []).some((m) => m.name === HOME_VOLUME))
    engine.volumeMounts = [...(engine.volumeMounts ?? []), { name: HOME_VOLUME, mountPath: HOME }];
}
