import { describe, expect, it } from "vitest";
import { ConfigError, PlatformError } from "@infera/core";
import type { EngineProfile } from "@infera/registry";
import type { Principal } from "./auth.ts";
import { allowanceOf, checkDeploy, checkExtraArgs, DEFAULT_PROFILES, parseDeployPolicy } from "./deploy-policy.ts";

const profile: EngineProfile = {
  ...DEFAULT_PROFILES[0]!,
  gpu_types: ["L4", "A100-80GB"],
  max_num_gpus: 2,
  max_instances: 4,
  created_at: new Date(),
  updated_at: new Date(),
};
const tenant: Principal = { keyId: "key_t", tenantId: "ten_t", scopes: ["deploy"], tier: "standard", rpm: null, tpm: null, maxConcurrent: null };
const admin: Principal = { ...tenant, scopes: ["admin"] };
const ask = { gpu: "L4", numGpus: 1, maxInstances: 1, engine: undefined, containerImage: undefined, extraArgs: [] as string[] };

function refusal(f: () => void): PlatformError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(PlatformError);
    return err as PlatformError;
  }
  throw new Error("not refused");
}

describe("extra_args against a profile", () => {
  it("takes listed flags alone, with =VALUE or with the value next, values matching whole", () => {
    checkExtraArgs(["--enable-prefix-caching", "--max-model-len=8192", "--dtype", "bfloat16", "--gpu-memory-utilization", "0.9"], profile);
  });
  it.each([
    [["--trust-remote-code"], /the flag '--trust-remote-code' is not allowed/],
    [["--max-model-len", "8192; rm -rf /"], /must match/],
    [["--max-model-len"], /none was given/],
    [["--enable-prefix-caching=1"], /takes no value/],
    [["bare"], /'bare' is not a flag/],
    [["--dtype=bfloat16x"], /must match/],
  ])("refuses %j naming extra_args", (args, message) => {
    const e = refusal(() => checkExtraArgs(args, profile));
    expect(e.code).toBe("permission_denied");
    expect(e.param).toBe("extra_args");
    expect(e.message).toMatch(message);
  });
});

describe("a deploy against the policy", () => {
  it("refuses a tenant's container_image, GPU type, GPUs and instances past the profile, each by name", () => {
    const none = allowanceOf(tenant, undefined);
    expect(refusal(() => checkDeploy({ ...ask, containerImage: "evil:latest" }, profile, none)).param).toBe("container_image");
    expect(refusal(() => checkDeploy({ ...ask, gpu: "H100-80GB" }, profile, none)).param).toBe("gpu");
    expect(refusal(() => checkDeploy({ ...ask, numGpus: 4 }, profile, none)).param).toBe("num_gpus");
    expect(refusal(() => checkDeploy({ ...ask, maxInstances: 5 }, profile, none)).param).toBe("settings.max_instances");
    expect(refusal(() => checkDeploy({ ...ask, engine: "tgi" }, profile, none)).code).toBe("invalid_request");
    checkDeploy(ask, profile, none);
  });
  it("lets a grant set the image or free arguments, and admin keys anything", () => {
    const grant = { tenant_id: "ten_t", container_image: true, extra_args: false, gpu_quota: null, updated_at: new Date() };
    checkDeploy({ ...ask, containerImage: "mine@sha256:" + "a".repeat(64) }, profile, allowanceOf(tenant, grant));
    expect(refusal(() => checkDeploy({ ...ask, extraArgs: ["--trust-remote-code"] }, profile, allowanceOf(tenant, grant))).param).toBe("extra_args");
    checkDeploy({ ...ask, extraArgs: ["--trust-remote-code"] }, profile, allowanceOf(tenant, { ...grant, extra_args: true }));
    checkDeploy(
      { ...ask, containerImage: "x:1", extraArgs: ["--anything"], gpu: "H100-80GB", numGpus: 8, maxInstances: 64 },
      profile,
      allowanceOf(admin, undefined),
    );
  });
});

describe("DEPLOY_POLICY", () => {
  it("defaults to the built-in profiles and no quota", () => {
    expect(parseDeployPolicy(undefined)).toEqual({ profiles: DEFAULT_PROFILES, tenantGpuQuota: null });
  });
  it("reads profiles and a quota, and names what is wrong", () => {
    const p = parseDeployPolicy(
      JSON.stringify({
        tenantGpuQuota: 16,
        profiles: [{ name: "small", engine: "vllm", image: null, allowed_args: [], gpu_types: ["L4"], max_num_gpus: 1, max_instances: 2 }],
      }),
    );
    expect(p.tenantGpuQuota).toBe(16);
    expect(p.profiles[0]).toMatchObject({ name: "small", description: null });
    expect(() => parseDeployPolicy("{")).toThrow(ConfigError);
    expect(() => parseDeployPolicy(JSON.stringify({ profiles: [{ name: "x", engine: "vllm", image: "nginx:latest" }] }))).toThrow(/DEPLOY_POLICY/);
    const badPattern = {
      name: "x",
      engine: "vllm",
      image: null,
      allowed_args: [{ flag: "--a", pattern: "(" }],
      gpu_types: [],
      max_num_gpus: 1,
      max_instances: 1,
    };
    expect(() => parseDeployPolicy(JSON.stringify({ profiles: [badPattern] }))).toThrow(/allowed_args\[0\]\.pattern/);
  });
});
