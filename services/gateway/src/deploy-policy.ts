/**
 * Deploy policy: what a tenant may ask of `POST /deploy/llm` and `PUT /deploy/{id}`. A
 * tenant chooses an engine profile (the operator's: engine, image by digest, the
 * `extra_args` flags and value patterns it allows, GPU types, per-deployment limits);
 * `container_image` and arguments outside the profile are for admin keys, or for a tenant
 * an admin granted them. A refused field is a 403 naming it, before anything is written.
 * The per-tenant GPU quota is checked in the registry, in the creating transaction.
 *
 * Profiles are seeded at start from `DEPLOY_POLICY` (Helm's `deployPolicy` values, as
 * JSON); without it, the built-in `vllm` and `tgi` profiles below.
 */
import Type, { type Static } from "typebox";
import { Compile } from "typebox/compile";
import { ConfigError, PlatformError } from "@infera/core";
import type { AllowedArg, EngineProfile, ProfileInput, TenantDeployGrant } from "@infera/registry";
import type { Principal } from "./auth.ts";

/** An image pinned by digest: `registry/repo[:tag]@sha256:<64 hex>`. */
export const DIGEST_PATTERN = "^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$";

export const AllowedArgSchema = Type.Object(
  {
    flag: Type.String({ pattern: "^--[a-z0-9][a-z0-9-]{0,63}$", description: "The flag, `--name`." }),
    pattern: Type.Union([Type.String({ minLength: 1, maxLength: 200 }), Type.Null()], {
      description: "A regular expression the whole value must match (`--flag VALUE` or `--flag=VALUE`); null: a flag without a value.",
    }),
  },
  { additionalProperties: false },
);

/** A profile's fields but its name (PUT /admin/engine-profiles/{name} replaces them). */
export const profileFields = {
  engine: Type.Enum(["vllm", "tgi"]),
  image: Type.Union([Type.String({ maxLength: 500, pattern: DIGEST_PATTERN }), Type.Null()], {
    description: "The engine image by digest; null: the runtime's configured image for the engine.",
  }),
  allowed_args: Type.Array(AllowedArgSchema, { maxItems: 100 }),
  gpu_types: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 32, description: "Empty: any GPU type the cluster offers." }),
  max_num_gpus: Type.Integer({ minimum: 1, maximum: 8 }),
  max_instances: Type.Integer({ minimum: 1, maximum: 64 }),
  description: Type.Optional(Type.Union([Type.String({ maxLength: 500 }), Type.Null()])),
};

export const ProfileBody = Type.Object({ name: Type.String({ pattern: "^[a-z0-9][a-z0-9._-]{0,62}$" }), ...profileFields }, { additionalProperties: false });
export type ProfileBody = Static<typeof ProfileBody>;

const PolicyConfig = Type.Object(
  {
    profiles: Type.Optional(Type.Array(ProfileBody, { maxItems: 100 })),
    tenantGpuQuota: Type.Optional(Type.Union([Type.Integer({ minimum: 0, maximum: 1_000_000 }), Type.Null()])),
  },
  { additionalProperties: false },
);
const policyCheck = Compile(PolicyConfig);

export interface DeployPolicyConfig {
  profiles: ProfileInput[];
  /** GPUs a tenant may hold when its grant sets none; null: no quota. */
  tenantGpuQuota: number | null;
}

const INT = (digits: number) => `[0-9]{1,${digits}}`;

/** Built-in profiles: each engine's runtime image, and the arguments that change tuning, not what runs. */
export const DEFAULT_PROFILES: ProfileInput[] = [
  {
    name: "vllm",
    engine: "vllm",
    image: null,
    allowed_args: [
      { flag: "--enable-prefix-caching", pattern: null },
      { flag: "--enable-chunked-prefill", pattern: null },
      { flag: "--max-model-len", pattern: INT(7) },
      { flag: "--max-num-seqs", pattern: INT(5) },
      { flag: "--max-num-batched-tokens", pattern: INT(7) },
      { flag: "--gpu-memory-utilization", pattern: "0?\\.[0-9]{1,3}|1(\\.0{1,3})?" },
      { flag: "--dtype", pattern: "auto|half|float16|bfloat16|float|float32" },
      { flag: "--kv-cache-dtype", pattern: "auto|fp8|fp8_e5m2|fp8_e4m3" },
      { flag: "--quantization", pattern: "awq|gptq|fp8|bitsandbytes|marlin" },
    ],
    gpu_types: [],
    max_num_gpus: 8,
    max_instances: 64,
    description: "vLLM with the platform's image; tuning flags only.",
  },
  {
    name: "tgi",
    engine: "tgi",
    image: null,
    allowed_args: [
      { flag: "--max-input-length", pattern: INT(7) },
      { flag: "--max-total-tokens", pattern: INT(7) },
      { flag: "--max-batch-prefill-tokens", pattern: INT(7) },
      { flag: "--quantize", pattern: "awq|gptq|eetq|bitsandbytes|fp8" },
      { flag: "--dtype", pattern: "float16|bfloat16" },
    ],
    gpu_types: [],
    max_num_gpus: 8,
    max_instances: 64,
    description: "Text Generation Inference with the platform's image; tuning flags only.",
  },
];

/** A profile's argument patterns must compile; the error names the one that does not. */
export function patternProblem(args: readonly AllowedArg[]): { index: number; message: string } | undefined {
  for (const [i, a] of args.entries()) {
    if (a.pattern === null) continue;
    try {
      new RegExp(a.pattern, "u");
    } catch (err) {
      return { index: i, message: (err as Error).message };
    }
  }
  return undefined;
}

export function toProfileInput(b: ProfileBody): ProfileInput {
  return { ...b, description: b.description ?? null };
}

/** `DEPLOY_POLICY` (JSON): profiles to seed and the default tenant GPU quota. */
export function parseDeployPolicy(raw: string | undefined): DeployPolicyConfig {
  if (raw === undefined || raw.trim() === "") return { profiles: DEFAULT_PROFILES, tenantGpuQuota: null };
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (err) {
    throw new ConfigError(`DEPLOY_POLICY must be JSON: ${(err as Error).message}`);
  }
  if (!policyCheck.Check(v)) {
    const e = policyCheck.Errors(v)[0];
    throw new ConfigError(`DEPLOY_POLICY is not a valid deploy policy: ${e ? `${e.instancePath || "/"} ${e.message}` : "bad shape"}`);
  }
  const profiles = v.profiles?.length ? v.profiles.map(toProfileInput) : DEFAULT_PROFILES;
  for (const p of profiles) {
    const bad = patternProblem(p.allowed_args);
    if (bad) throw new ConfigError(`DEPLOY_POLICY: profile '${p.name}' allowed_args[${bad.index}].pattern is not a regular expression: ${bad.message}`);
  }
  return { profiles, tenantGpuQuota: v.tenantGpuQuota ?? null };
}

function refused(param: string, message: string): PlatformError {
  return new PlatformError("permission_denied", message, { param });
}

/**
 * Checks `extra_args` against a profile's allow-list: each element is `--flag`, `--flag=VALUE`
 * or `--flag` then `VALUE`; the flag must be listed and its value match the pattern whole.
 */
export function checkExtraArgs(args: readonly string[], profile: Pick<EngineProfile, "name" | "allowed_args">): void {
  const allowed = new Map(profile.allowed_args.map((a) => [a.flag, a.pattern]));
  const listed = [...allowed.keys()].join(", ") || "none";
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const eq = arg.indexOf("=");
    const flag = arg.startsWith("--") ? (eq >= 0 ? arg.slice(0, eq) : arg) : undefined;
    if (flag === undefined || !allowed.has(flag)) {
      throw refused(
        "extra_args",
        `Invalid value for 'extra_args[${i}]': ${flag === undefined ? `'${arg.slice(0, 100)}' is not a flag` : `the flag '${flag.slice(0, 100)}' is not allowed`} by the engine profile '${profile.name}' (allowed: ${listed}). Free arguments need an admin's grant.`,
      );
    }
    const pattern = allowed.get(flag)!;
    if (pattern === null) {
      if (eq >= 0) throw refused("extra_args", `Invalid value for 'extra_args[${i}]': the flag '${flag}' takes no value.`);
      continue;
    }
    let value: string | undefined;
    if (eq >= 0) value = arg.slice(eq + 1);
    else value = args[++i];
    if (value === undefined || !new RegExp(`^(?:${pattern})$`, "u").test(value)) {
      throw refused(
        "extra_args",
        `Invalid value for 'extra_args[${i}]': the value of '${flag}' must match ${pattern} (engine profile '${profile.name}')${value === undefined ? "; none was given" : ""}.`,
      );
    }
  }
}

export interface DeployAsk {
  gpu: string;
  numGpus: number;
  maxInstances: number;
  engine: string | undefined;
  containerImage: string | null | undefined;
  extraArgs: readonly string[];
}

/** What a deploy's key may do beyond the profile. */
export function allowanceOf(p: Principal, grant: TenantDeployGrant | undefined): { image: boolean; args: boolean; limits: boolean } {
  const admin = p.scopes.includes("admin");
  return { image: admin || grant?.container_image === true, args: admin || grant?.extra_args === true, limits: !admin };
}

/** Refuses (403 naming the field) what the profile does not allow this key. */
export function checkDeploy(ask: DeployAsk, profile: EngineProfile, allowance: ReturnType<typeof allowanceOf>): void {
  if (ask.engine !== undefined && ask.engine !== profile.engine) {
    throw new PlatformError("invalid_request", `Invalid value for 'engine': the engine profile '${profile.name}' runs ${profile.engine}, not ${ask.engine}.`, {
      param: "engine",
    });
  }
  if (ask.containerImage != null && !allowance.image) {
    throw refused(
      "container_image",
      `'container_image' may be set by admin keys only (or a tenant an admin granted it); the engine profile '${profile.name}' sets the image.`,
    );
  }
  if (ask.extraArgs.length > 0 && !allowance.args) checkExtraArgs(ask.extraArgs, profile);
  if (!allowance.limits) return;
  if (profile.gpu_types.length > 0 && !profile.gpu_types.includes(ask.gpu)) {
    throw refused("gpu", `Invalid value for 'gpu': the engine profile '${profile.name}' allows ${profile.gpu_types.join(", ")}, not '${ask.gpu}'.`);
  }
  if (ask.numGpus > profile.max_num_gpus) {
    throw refused("num_gpus", `Invalid value for 'num_gpus': the engine profile '${profile.name}' allows at most ${profile.max_num_gpus}, not ${ask.numGpus}.`);
  }
  checkInstances(ask.maxInstances, profile);
}

/** A rescale: the profile's instance limit. */
export function checkInstances(maxInstances: number, profile: Pick<EngineProfile, "name" | "max_instances">): void {
  if (maxInstances > profile.max_instances) {
    throw refused(
      "settings.max_instances",
      `Invalid value for 'settings.max_instances': the engine profile '${profile.name}' allows at most ${profile.max_instances}, not ${maxInstances}.`,
    );
  }
}
