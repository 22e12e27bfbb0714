/**
 * The deploy API, in the hosted provider's shape: `POST /deploy/llm` answers a
 * `deploy_id` at once; list, read, change settings, stop, start, delete; GPU
 * availability; a model's versions. Keys with the `deploy` scope (or `admin`) see and
 * change only their own tenant's deployments — another tenant's id is a 404, never a
 * 403. Every change is published on the registry channel (gateways drop cached
 * resolutions; schedulers create or stop dispatchers and reconcile at once). A rejected
 * request changes nothing: checks come first, and each change is one transaction.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Redis } from "ioredis";
import type { Kysely } from "kysely";
import { PlatformError, type Logger } from "@infera/core";
import { type DeploymentStatusNote, type GpuCapacity, type GpuType, parseReplicaReport, type RedisKeys } from "@infera/contracts";
import {
  DEPLOYMENT_STATES,
  changeDeploymentSettings,
  createCustomDeployment,
  deleteDeploymentSecrets,
  getDeployGrant,
  getDeployment,
  getEngineProfile,
  listEngineProfiles,
  tenantGpuUse,
  getTenant,
  listDeployments,
  listModelVersions,
  sealSecret,
  transition,
  type DB,
  type DeploymentConfig,
  type DeploymentSettings,
  type DeploymentState,
  type DeploymentView,
} from "@infera/registry";
import type { KeyCache } from "../auth.ts";
import { deployAuth, ownDeployment, principalOf } from "./deploy-access.ts";
import { errorResponses } from "../error-schema.ts";
import {
  CONFIG_FIELDS,
  DeployCreated,
  Deployment,
  DeploymentList,
  EngineList,
  GpuAvailability,
  ModelVersions,
  ModelVersionsParams,
  DeployLlmRequest,
  ENGINES,
  DeploymentParams,
  type DeploySettings,
  ListQuery,
  ProfileList,
  UpdateDeploymentRequest,
} from "../deploy-schema.ts";
import { allowanceOf, checkDeploy, checkInstances } from "../deploy-policy.ts";

export interface DeployRouteDeps {
  db: Kysely<DB>;
  keys: KeyCache;
  redis: Redis;
  redisKeys: RedisKeys;
  gpuTypes: readonly GpuType[];
  /** Seals Hugging Face tokens (from SECRETS_KEY); without it a token is refused, never stored in clear. */
  secretsKey: Buffer | undefined;
  /** GPUs a tenant may hold when its grant sets none (null: no quota). */
  defaultGpuQuota: number | null;
  logger: Logger;
}

/** A replica report older than this no longer counts as running (agents beat every 0.2–1 s). */
const REPORT_FRESH_MS = 10_000;
/** The leader rewrites a waiting deployment's status note every pass; older ones are stale. */
const NOTE_FRESH_MS = 30_000;
/** The leader reads the cluster's GPU nodes every 10 s; a reading older than this is not trusted. */
const CAPACITY_FRESH_MS = 120_000;
/** States in which a deployment wants replicas. */
const LIVE: readonly DeploymentState[] = ["initializing", "downloading", "deploying", "running"];

export interface Instances {
  running: number;
  pending: number;
}

/** What the API shows of a deployment. The HF token never appears: only `hf.has_token`. */
export interface DeploymentOut {
  deploy_id: string;
  model_name: string;
  version: string;
  task: string;
  status: DeploymentState;
  fail_reason: string | null;
  created_at: string;
  updated_at: string;
  instances: Instances;
  /**
   * Why replicas are not up yet, in the runtime's own words (on Kubernetes the pending pod's
   * PodScheduled message: "0/5 nodes are available: 2 Insufficient nvidia.com/gpu, …"); null
   * when nothing waits.
   */
  status_message: string | null;
  config: DeploymentConfig;
  settings: DeploymentSettings;
}

/**
 * running: replicas whose agent reports healthy, not draining, recently. pending: what
 * the reconciler asked the runtime for, less those (0 at scale-to-zero, stopped, failed,
 * deleted). Before the reconciler has asked, a live deployment wants max(1, min_instances)
 * until it runs, min_instances after.
 */
export function instancesOf(d: Pick<DeploymentView, "status" | "settings">, reports: Record<string, string>, desired: string | null, now: number): Instances {
  let running = 0;
  for (const json of Object.values(reports)) {
    // A malformed report counts for nothing.
    const r = parseReplicaReport(json);
    if (r?.healthy && !r.draining && now - r.at <= REPORT_FRESH_MS) running++;
  }
  if (!LIVE.includes(d.status)) return { running, pending: 0 };
  const { settings } = d;
  const wanted = desired !== null ? Number(desired) : d.status === "running" ? settings.min_instances : Math.max(1, settings.min_instances);
  return { running, pending: Math.max(0, wanted - running) };
}

export function registerDeployRoutes(app: FastifyInstance, deps: DeployRouteDeps): void {
  const { db, redis, redisKeys: rk } = deps;
  const gpuNames = deps.gpuTypes.map((g) => g.name);

  interface Live {
    instances: Instances;
    statusMessage: string | null;
  }

  async function liveFor(ds: readonly DeploymentView[]): Promise<Live[]> {
    if (ds.length === 0) return [];
    const pipe = redis.pipeline();
    for (const d of ds) {
      pipe.hgetall(rk.replicas(d.id));
      pipe.hget(rk.desiredReplicas, d.id);
      pipe.hget(rk.deploymentStatus, d.id);
    }
    const res = (await pipe.exec()) ?? [];
    const now = Date.now();
    return ds.map((d, i) => {
      const reports = (res[3 * i]?.[1] ?? {}) as Record<string, string>;
      const desired = (res[3 * i + 1]?.[1] ?? null) as string | null;
      return { instances: instancesOf(d, reports, desired, now), statusMessage: LIVE.includes(d.status) ? freshNote(res[3 * i + 2]?.[1], now) : null };
    });
  }

  async function instancesFor(ds: readonly DeploymentView[]): Promise<Instances[]> {
    return (await liveFor(ds)).map((l) => l.instances);
  }

  /** The scheduler's last reading of the GPU type's nodes, when recent (kubernetes runtime, gpu mode). */
  async function capacityOf(gpu: string): Promise<GpuCapacity | undefined> {
    const raw = await redis.hget(rk.gpuCapacity, gpu);
    if (!raw) return undefined;
    try {
      const c = JSON.parse(raw) as GpuCapacity;
      return Date.now() - c.at <= CAPACITY_FRESH_MS ? c : undefined;
    } catch {
      return undefined;
    }
  }

  function out(d: DeploymentView, live: Live): DeploymentOut {
    return {
      deploy_id: d.id,
      model_name: d.model_name,
      version: d.version,
      task: d.task,
      status: d.status,
      fail_reason: d.fail_reason,
      created_at: d.created_at.toISOString(),
      updated_at: d.updated_at.toISOString(),
      instances: live.instances,
      status_message: live.statusMessage,
      config: d.config,
      settings: d.settings,
    };
  }

  async function show(d: DeploymentView): Promise<DeploymentOut> {
    const [live] = await liveFor([d]);
    return out(d, live ?? { instances: { running: 0, pending: 0 }, statusMessage: null });
  }

  const own = (req: FastifyRequest, id: string): Promise<DeploymentView> => ownDeployment(db, principalOf(req), id);

  async function changed(id: string): Promise<void> {
    try {
      await redis.publish(rk.registryChannel, JSON.stringify({ deploymentId: id }));
    } catch (err) {
      // The registry is right; schedulers and gateways catch up on their next resync / cache expiry.
      deps.logger.warn({ err, deploymentId: id }, "could not publish a deployment change");
    }
  }

  app.register(async (scope) => {
    scope.addHook("onRequest", deployAuth(deps.keys));

    scope.post(
      "/deploy/llm",
      {
        schema: {
          tags: ["deploy"],
          summary: "Deploy a model (answers its deploy_id at once)",
          body: DeployLlmRequest,
          response: { 200: DeployCreated, ...errorResponses },
        },
      },
      async (req) => {
        const body = req.body as DeployLlmRequest;
        const p = principalOf(req);
        if (!gpuNames.includes(body.gpu)) {
          throw new PlatformError("invalid_request", `Invalid value for 'gpu': '${body.gpu}' is not a GPU type this cluster offers (${gpuNames.join(", ")}).`, {
            param: "gpu",
          });
        }
        // What the cluster's nodes hold (when the scheduler reads them): a type no node has, or
        // more GPUs than one node holds, would leave the replicas unschedulable forever.
        const numGpus = body.num_gpus ?? 1;
        const capacity = await capacityOf(body.gpu);
        if (capacity && capacity.nodes === 0) {
          throw new PlatformError(
            "invalid_request",
            `Invalid value for 'gpu': this cluster has no node with '${body.gpu}' GPUs (no schedulable node matches that GPU type's nodeSelector and taints).`,
            { param: "gpu" },
          );
        }
        if (capacity && numGpus > capacity.maxPerNode) {
          throw new PlatformError(
            "invalid_request",
            `Invalid value for 'num_gpus': ${numGpus} is more than any '${body.gpu}' node holds (at most ${capacity.maxPerNode}); a replica's GPUs must be on one node.`,
            { param: "num_gpus" },
          );
        }
        // Default 1/1; a min above 1 given alone raises the default max with it.
        const settings = mergeSettings({ min_instances: 1, max_instances: Math.max(1, body.settings?.min_instances ?? 1) }, body.settings);
        // The operator's policy: the profile, what this key may ask beyond it (403 naming the field).
        const admin = p.scopes.includes("admin");
        const profileName = body.profile ?? body.engine ?? "vllm";
        const profile = await getEngineProfile(db, profileName);
        if (!profile && (body.profile !== undefined || !admin)) {
          throw new PlatformError(
            "invalid_request",
            `Invalid value for 'profile': there is no engine profile named '${profileName}' (GET /deploy/llm/profiles lists them).`,
            {
              param: "profile",
            },
          );
        }
        const grant = await getDeployGrant(db, p.tenantId);
        if (profile) {
          const ask = {
            gpu: body.gpu,
            numGpus,
            maxInstances: settings.max_instances,
            engine: body.engine,
            containerImage: body.container_image,
            extraArgs: body.extra_args ?? [],
          };
          checkDeploy(ask, profile, allowanceOf(p, grant));
        }
        const tenant = await getTenant(db, p.tenantId);
        if (!tenant) throw new PlatformError("invalid_api_key", "Incorrect API key provided.");
        const slash = body.model_name.indexOf("/");
        if (slash >= 0 && body.model_name.slice(0, slash) !== tenant.name) {
          throw new PlatformError(
            "invalid_request",
            `Invalid value for 'model_name': '${body.model_name}'. Give the model's own name; it is stored as '${tenant.name}/<model_name>'.`,
            { param: "model_name" },
          );
        }
        const modelName = slash >= 0 ? body.model_name : `${tenant.name}/${body.model_name}`;
        const token = body.hf?.token ?? undefined;
        if (token !== undefined && !deps.secretsKey) {
          throw new PlatformError("invalid_request", "This platform cannot store a Hugging Face token: SECRETS_KEY is not configured.", { param: "hf.token" });
        }
        const config: DeploymentConfig = {
          gpu: body.gpu,
          num_gpus: numGpus,
          max_batch_size: body.max_batch_size ?? 96,
          engine: profile?.engine ?? body.engine ?? "vllm",
          hf: body.hf ? { repo: body.hf.repo, revision: body.hf.revision ?? null, has_token: token !== undefined } : null,
          container_image: body.container_image ?? profile?.image ?? null,
          extra_args: body.extra_args ?? [],
          placement: "prefix-affinity",
          profile: profile?.name ?? null,
        };
        const d = await createCustomDeployment(db, {
          tenantId: p.tenantId,
          modelName,
          task: "chat",
          config,
          settings,
          hfTokenSealed: token !== undefined && deps.secretsKey ? sealSecret(token, deps.secretsKey) : undefined,
          gpuQuota: { quota: admin ? null : (grant?.gpu_quota ?? deps.defaultGpuQuota), param: "num_gpus" },
        });
        deps.logger.info({ deploymentId: d.id, model: d.model_name, version: d.version, tenantId: p.tenantId }, "deployment created");
        await changed(d.id);
        return { deploy_id: d.id };
      },
    );

    scope.get(
      "/deploy/list",
      { schema: { tags: ["deploy"], summary: "List your deployments", querystring: ListQuery, response: { 200: DeploymentList, ...errorResponses } } },
      async (req) => {
        const q = req.query as ListQuery;
        let statuses: DeploymentState[] | undefined;
        if (q.status !== undefined) {
          statuses = [];
          for (const s of q.status
            .split(",")
            .map((x) => x.trim())
            .filter((x) => x !== "")) {
            if (!(DEPLOYMENT_STATES as readonly string[]).includes(s)) {
              throw new PlatformError("invalid_request", `Invalid value for 'status': '${s}'. Supported values are: ${DEPLOYMENT_STATES.join(", ")}.`, {
                param: "status",
              });
            }
            statuses.push(s as DeploymentState);
          }
        }
        let ds = await listDeployments(db, { tenantId: principalOf(req).tenantId, statuses });
        // Deleted deployments are history: listed only when asked for by status.
        if (!statuses?.length) ds = ds.filter((d) => d.status !== "deleted");
        const live = await liveFor(ds);
        return ds.map((d, i) => out(d, live[i] ?? { instances: { running: 0, pending: 0 }, statusMessage: null }));
      },
    );

    scope.get(
      "/deploy/llm/gpu_availability",
      {
        schema: {
          tags: ["deploy"],
          summary: "The GPU types the cluster offers and how many are in use",
          response: { 200: GpuAvailability, ...errorResponses },
        },
      },
      async () => {
        const live = await listDeployments(db, { statuses: LIVE });
        const instances = await instancesFor(live);
        const inUse = new Map<string, number>();
        live.forEach((d, i) => {
          const c = d.config;
          const n = instances[i] ?? { running: 0, pending: 0 };
          inUse.set(c.gpu, (inUse.get(c.gpu) ?? 0) + c.num_gpus * (n.running + n.pending));
        });
        // The cluster's own count (allocatable on the type's nodes) when the scheduler reads it, else the configured one.
        const gpus = [];
        for (const g of deps.gpuTypes) {
          const used = inUse.get(g.name) ?? 0;
          const total = (await capacityOf(g.name))?.allocatable ?? g.count;
          gpus.push({ gpu: g.name, total: total ?? null, in_use: used, available: total === undefined ? null : Math.max(0, total - used) });
        }
        return { gpus };
      },
    );

    scope.get(
      "/deploy/llm/profiles",
      {
        schema: {
          tags: ["deploy"],
          summary: "The engine profiles a deployment may choose, and what your key may do beyond them",
          response: { 200: ProfileList, ...errorResponses },
        },
      },
      async (req) => {
        const p = principalOf(req);
        const grant = await getDeployGrant(db, p.tenantId);
        const allowance = allowanceOf(p, grant);
        return {
          object: "list",
          data: (await listEngineProfiles(db)).map((x) => ({
            name: x.name,
            engine: x.engine,
            description: x.description,
            allowed_args: x.allowed_args,
            gpu_types: x.gpu_types,
            max_num_gpus: x.max_num_gpus,
            max_instances: x.max_instances,
          })),
          grant: {
            container_image: allowance.image,
            extra_args: allowance.args,
            gpu_quota: grant?.gpu_quota ?? deps.defaultGpuQuota,
            gpus_in_use: await tenantGpuUse(db, p.tenantId),
          },
        };
      },
    );

    scope.get(
      "/deploy/llm/engines",
      { schema: { tags: ["deploy"], summary: "The engines a deployment may run", response: { 200: EngineList, ...errorResponses } } },
      async () => ({
        engines: ENGINES.map((e, i) => ({ ...e, tasks: [...e.tasks], default: i === 0 })),
      }),
    );

    scope.get(
      "/deploy/:id",
      { schema: { tags: ["deploy"], summary: "One deployment", params: DeploymentParams, response: { 200: Deployment, ...errorResponses } } },
      async (req) => {
        return show(await own(req, (req.params as DeploymentParams).id));
      },
    );

    scope.put(
      "/deploy/:id",
      {
        schema: {
          tags: ["deploy"],
          summary: "Change a deployment's settings (its config is immutable)",
          params: DeploymentParams,
          body: UpdateDeploymentRequest,
          response: { 200: Deployment, ...errorResponses },
        },
        // Before schema validation: a config field gets its own message, not "unrecognized".
        preValidation: async (req) => {
          const body = req.body;
          if (body === null || typeof body !== "object" || Array.isArray(body)) return;
          for (const k of Object.keys(body)) {
            if (CONFIG_FIELDS.includes(k)) {
              throw new PlatformError("invalid_request", `'${k}' cannot be changed: a deployment's config is immutable; only 'settings' may be updated.`, {
                param: k,
              });
            }
          }
        },
      },
      async (req) => {
        const d = await own(req, (req.params as DeploymentParams).id);
        const body = req.body as UpdateDeploymentRequest;
        const settings = mergeSettings(d.settings, body.settings);
        // Admin keys are the operator's: no profile limit, no quota.
        const p = principalOf(req);
        const admin = p.scopes.includes("admin");
        if (!admin && d.config.profile) {
          const profile = await getEngineProfile(db, d.config.profile);
          if (profile) checkInstances(settings.max_instances, profile);
        }
        const quota = admin ? null : ((await getDeployGrant(db, p.tenantId))?.gpu_quota ?? deps.defaultGpuQuota);
        const updated = await changeDeploymentSettings(db, d.id, settings, { quota, param: "settings.max_instances" });
        await changed(d.id);
        return show(updated);
      },
    );

    scope.delete(
      "/deploy/:id",
      { schema: { tags: ["deploy"], summary: "Delete a deployment", params: DeploymentParams, response: { 200: Deployment, ...errorResponses } } },
      async (req) => {
        const d = await own(req, (req.params as DeploymentParams).id);
        if (d.status === "deleted") throw new PlatformError("conflict", `The deployment '${d.id}' is already deleted.`, { param: "status" });
        await transition(db, d.id, "deleted", {
          reason: "deleted by API",
          expectFrom: [d.status],
          // Its token is needed by nothing any more.
          within: (trx) => deleteDeploymentSecrets(trx, d.id),
        });
        await changed(d.id);
        return show((await getDeployment(db, d.id))!);
      },
    );

    scope.post(
      "/deploy/:id/stop",
      { schema: { tags: ["deploy"], summary: "Stop a running deployment", params: DeploymentParams, response: { 200: Deployment, ...errorResponses } } },
      async (req) => {
        const d = await own(req, (req.params as DeploymentParams).id);
        if (d.status !== "running") {
          throw new PlatformError("conflict", `Cannot stop the deployment '${d.id}': it is ${d.status}; only a running deployment can be stopped.`, {
            param: "status",
          });
        }
        await transition(db, d.id, "stopped", { reason: "stopped by API", expectFrom: ["running"] });
        await changed(d.id);
        return show((await getDeployment(db, d.id))!);
      },
    );

    scope.post(
      "/deploy/:id/start",
      {
        schema: {
          tags: ["deploy"],
          summary: "Start a stopped or failed deployment",
          params: DeploymentParams,
          response: { 200: Deployment, ...errorResponses },
        },
      },
      async (req) => {
        const d = await own(req, (req.params as DeploymentParams).id);
        if (d.status !== "stopped" && d.status !== "failed") {
          throw new PlatformError("conflict", `Cannot start the deployment '${d.id}': it is ${d.status}; only a stopped or failed deployment can be started.`, {
            param: "status",
          });
        }
        await transition(db, d.id, "deploying", { reason: "started by API", expectFrom: ["stopped", "failed"] });
        await changed(d.id);
        return show((await getDeployment(db, d.id))!);
      },
    );

    // `GET /models/{model_name}/versions`: model names hold a slash (`tenant/model`).
    scope.get(
      "/models/*",
      {
        schema: { tags: ["deploy"], summary: "A model's versions", response: { 200: ModelVersions, ...errorResponses } },
        // The model name holds a slash: a wildcard here, one path parameter in the document.
        config: { openapi: { path: "/models/{model_name}/versions", params: ModelVersionsParams } },
      },
      async (req) => {
        const path = (req.params as { "*": string })["*"];
        if (!path.endsWith("/versions")) throw new PlatformError("not_found", `Unknown request URL: GET /models/${path}.`);
        // The router has decoded the path once; decoding again would turn a name's `%25` into a bad escape.
        const name = path.slice(0, -"/versions".length);
        const p = principalOf(req);
        let rows = await listModelVersions(db, p.tenantId, name);
        if (rows.length === 0 && !name.includes("/")) {
          const tenant = await getTenant(db, p.tenantId);
          if (tenant) rows = await listModelVersions(db, p.tenantId, `${tenant.name}/${name}`);
        }
        if (rows.length === 0)
          throw new PlatformError("not_found", `The model '${name}' does not exist or you do not have access to it.`, { param: "model_name" });
        return rows.map((r) => ({ model_name: r.model_name, version: r.version, uploaded_at: r.uploaded_at.toISOString() }));
      },
    );
  });
}

/** Settings after a change; min ≤ max is checked here, naming the field. */
function mergeSettings(current: DeploymentSettings, change: DeploySettings | undefined): DeploymentSettings {
  const next = { min_instances: change?.min_instances ?? current.min_instances, max_instances: change?.max_instances ?? current.max_instances };
  if (next.min_instances > next.max_instances) {
    throw new PlatformError(
      "invalid_request",
      `Invalid value for 'settings.min_instances': ${next.min_instances} is more than settings.max_instances (${next.max_instances}).`,
      { param: "settings.min_instances" },
    );
  }
  return next;
}

/** A status note (JSON DeploymentStatusNote) when recent, else null. */
function freshNote(raw: unknown, now: number): string | null {
  if (typeof raw !== "string") return null;
  try {
    const n = JSON.parse(raw) as DeploymentStatusNote;
    return now - n.at <= NOTE_FRESH_MS ? n.message : null;
  } catch {
    return null;
  }
}
