/**
 * The deploy API's request bodies, as JSON Schema (TypeBox), in the hosted provider's
 * shape: Fastify validates with them (one 400 naming the field), the handlers' types
 * come from them. Unknown attributes are rejected by name.
 */
import Type, { type Static } from "typebox";

const Nullable = <T extends Type.TSchema>(t: T) => Type.Optional(Type.Union([t, Type.Null()]));

/** A model or repository name: letters, digits, `.`, `_`, `-`; at most one `owner/` in front. */
export const NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$";

export const MAX_INSTANCES = 64;

/** The engines a deployment may run (`engine`), the first the default; `GET /deploy/llm/engines` lists them. */
export const ENGINES = [
  { engine: "vllm", name: "vLLM", description: "vLLM's OpenAI-compatible server: continuous batching, prefix caching.", tasks: ["chat"] },
  { engine: "tgi", name: "Text Generation Inference", description: "Hugging Face TGI (Messages API; completions through /generate).", tasks: ["chat"] },
] as const;

export const DeploySettings = Type.Object(
  {
    min_instances: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_INSTANCES })),
    max_instances: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_INSTANCES })),
  },
  { additionalProperties: false },
);
export type DeploySettings = Static<typeof DeploySettings>;

export const HfWeights = Type.Object(
  {
    repo: Type.String({ minLength: 1, maxLength: 200, pattern: NAME_PATTERN }),
    revision: Nullable(Type.String({ minLength: 1, maxLength: 100 })),
    token: Nullable(Type.String({ minLength: 1, maxLength: 1000 })),
  },
  { additionalProperties: false },
);

export const DeployLlmRequest = Type.Object(
  {
    model_name: Type.String({ minLength: 1, maxLength: 100, pattern: NAME_PATTERN }),
    /** One of the configured GPU types (checked by the handler: the list is configuration). */
    gpu: Type.String({ minLength: 1, maxLength: 64 }),
    num_gpus: Type.Optional(Type.Integer({ minimum: 1, maximum: 8 })),
    max_batch_size: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })),
    hf: Nullable(HfWeights),
    container_image: Nullable(Type.String({ minLength: 1, maxLength: 500 })),
    extra_args: Type.Optional(Type.Array(Type.String({ maxLength: 1000 }), { maxItems: 64 })),
    settings: Type.Optional(DeploySettings),
    engine: Type.Optional(Type.Enum(ENGINES.map((e) => e.engine))),
    profile: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 100,
        description: "The engine profile (GET /deploy/llm/profiles): its image, the arguments it allows, its limits. Default: the profile named like `engine`.",
      }),
    ),
  },
  { additionalProperties: false },
);
export type DeployLlmRequest = Static<typeof DeployLlmRequest>;

/** `PUT /deploy/{id}`: only settings change. */
export const UpdateDeploymentRequest = Type.Object({ settings: DeploySettings }, { additionalProperties: false });
export type UpdateDeploymentRequest = Static<typeof UpdateDeploymentRequest>;

/** Fields of a deploy that are the deployment's immutable config (PUT rejects them by name). */
export const CONFIG_FIELDS: readonly string[] = [
  "model_name",
  "gpu",
  "num_gpus",
  "max_batch_size",
  "hf",
  "container_image",
  "extra_args",
  "engine",
  "profile",
  "config",
  "task",
  "version",
];

export const DeploymentParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });
export type DeploymentParams = Static<typeof DeploymentParams>;

export const ListQuery = Type.Object({ status: Type.Optional(Type.String({ maxLength: 200 })) }, { additionalProperties: false });
export type ListQuery = Static<typeof ListQuery>;

/** `GET /deploy/{id}/events`: a page of the lifecycle history, OpenAI's list cursor style. */
export const EventsQuery = Type.Object(
  {
    /** The last id of the previous page. */
    after: Type.Optional(Type.String({ pattern: "^[0-9]{1,19}$" })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    order: Type.Optional(Type.Enum(["asc", "desc"], { default: "asc" })),
  },
  { additionalProperties: false },
);
export type EventsQuery = Static<typeof EventsQuery>;

/** A time: unix seconds, or relative to now (`now`, `now-5h`; units s, m, h, d, w, M). */
export const TIME_PATTERN = "^([0-9]{1,11}|now(-[0-9]{1,6}[smhdwM])?)$";

/** `GET /deploy/{id}/stats`, the hosted provider's parameters. */
export const StatsQuery = Type.Object(
  {
    from: Type.String({ pattern: TIME_PATTERN, description: "Start of the window: unix seconds or now-relative (`now-5h`)." }),
    to: Type.Optional(Type.String({ pattern: TIME_PATTERN, default: "now", description: "End of the window, like `from`; default now." })),
  },
  { additionalProperties: false },
);
export type StatsQuery = Static<typeof StatsQuery>;

/** `GET /deploy/{id}/logs`. */
export const LogsQuery = Type.Object(
  {
    /** One replica (an id from `/replicas`); default every replica. */
    replica: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    /** Lines from the end of each replica's engine and agent logs. */
    tail: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000, default: 100 })),
    /** Keep the response open and send new lines as they are written. */
    follow: Type.Optional(Type.Boolean({ default: false })),
    /** `ndjson`: one JSON object a line; `text`: `<replica> <source> <line>`. */
    format: Type.Optional(Type.Enum(["ndjson", "text"], { default: "ndjson" })),
  },
  { additionalProperties: false },
);
export type LogsQuery = Static<typeof LogsQuery>;

// ---- What the deploy API answers (documented in /openapi.json; tests validate real answers against them) ----

const OrNull = <T extends Type.TSchema>(t: T) => Type.Union([t, Type.Null()]);
const DEPLOYMENT_STATUSES = ["initializing", "downloading", "deploying", "running", "stopped", "failed", "deleted"];
const IsoTime = Type.String({ format: "date-time" });

export const DeployCreated = Type.Object(
  { deploy_id: Type.String({ description: "The new deployment's id, at once; it moves through its lifecycle from here." }) },
  { $id: "DeployCreated" },
);

export const Deployment = Type.Object(
  {
    deploy_id: Type.String(),
    model_name: Type.String({ description: "`<tenant name>/<model_name>`." }),
    version: Type.String({ description: "`1`, `2`, … per model: each deploy is a new version." }),
    task: Type.Enum(["chat", "embeddings", "images"]),
    status: Type.Enum(DEPLOYMENT_STATUSES),
    fail_reason: OrNull(Type.String()),
    created_at: IsoTime,
    updated_at: IsoTime,
    instances: Type.Object({
      running: Type.Integer({ minimum: 0, description: "Replicas whose agent reports healthy." }),
      pending: Type.Integer({ minimum: 0, description: "Replicas asked for and not yet running." }),
    }),
    config: Type.Object({
      gpu: Type.String(),
      num_gpus: Type.Integer(),
      max_batch_size: Type.Integer(),
      engine: Type.Enum(["vllm", "tgi", "tei", "image"]),
      hf: OrNull(
        Type.Object({
          repo: Type.String(),
          revision: OrNull(Type.String()),
          has_token: Type.Boolean({ description: "A token is stored (sealed); it is never shown." }),
        }),
      ),
      container_image: OrNull(Type.String()),
      extra_args: Type.Array(Type.String()),
      placement: Type.Enum(["round-robin", "least-loaded", "prefix-affinity"]),
      profile: Type.Optional(OrNull(Type.String({ description: "The engine profile it was deployed with." }))),
    }),
    settings: Type.Object({ min_instances: Type.Integer(), max_instances: Type.Integer() }),
  },
  { $id: "Deployment" },
);

export const DeploymentList = Type.Array(Type.Ref("Deployment"));

export const GpuAvailability = Type.Object(
  {
    gpus: Type.Array(
      Type.Object({
        gpu: Type.String(),
        total: OrNull(Type.Integer({ description: "null: not counted (no limit configured)." })),
        in_use: Type.Integer(),
        available: OrNull(Type.Integer()),
      }),
    ),
  },
  { $id: "GpuAvailability" },
);

export const EngineList = Type.Object(
  {
    engines: Type.Array(
      Type.Object({
        engine: Type.Enum(ENGINES.map((e) => e.engine)),
        name: Type.String(),
        description: Type.String(),
        tasks: Type.Array(Type.String()),
        default: Type.Boolean(),
      }),
    ),
  },
  { $id: "EngineList" },
);

export const ModelVersions = Type.Array(Type.Object({ model_name: Type.String(), version: Type.String(), uploaded_at: IsoTime }), { $id: "ModelVersions" });

export const DeploymentEvent = Type.Object(
  {
    id: Type.String({ description: "Increasing: the cursor for `after`." }),
    deploy_id: Type.String(),
    from_status: OrNull(Type.Enum(DEPLOYMENT_STATUSES)),
    to_status: Type.Enum(DEPLOYMENT_STATUSES),
    reason: OrNull(Type.String()),
    created_at: IsoTime,
  },
  { $id: "DeploymentEvent", description: "A lifecycle move, or (from = to) a note: a settings change, scaled to zero, woken." },
);

export const DeploymentEventPage = Type.Object(
  {
    object: Type.Literal("list"),
    data: Type.Array(Type.Ref("DeploymentEvent")),
    first_id: OrNull(Type.String()),
    last_id: OrNull(Type.String()),
    has_more: Type.Boolean(),
  },
  { $id: "DeploymentEventPage" },
);

export const DeploymentStats = Type.Object(
  {
    requests: Type.Integer({ description: "Inference requests in the window." }),
    total_time: Type.Integer({ description: "Seconds spent in inference." }),
    total_tokens: Type.Integer(),
    input_tokens: Type.Integer(),
    output_tokens: Type.Integer(),
    total_amount: Type.Integer({ description: "Cents spent (rounded)." }),
    avg_time: Type.Number({ description: "Mean request time, ms." }),
    avg95_time: Type.Number({ description: "95th percentile request time, ms." }),
    errors: Type.Integer({ description: "Requests that reached a replica and ended in an error." }),
    from: Type.Integer({ description: "The window, unix seconds." }),
    to: Type.Integer(),
    cost_usd: Type.Number(),
    p50_time: Type.Number(),
    p99_time: Type.Number(),
    avg_ttft: Type.Number({ description: "Mean time to first token, ms." }),
    avg95_ttft: Type.Number({ description: "95th percentile time to first token, ms." }),
  },
  { $id: "DeploymentStats" },
);

export const Replica = Type.Object(
  {
    replica_id: Type.String(),
    phase: Type.Enum(["pending", "starting", "ready", "draining", "stopping", "failed"]),
    ready: Type.Boolean(),
    reason: OrNull(Type.String({ description: "Why it is not ready: unschedulable, image pull error, crash with exit code, engine not healthy yet, …" })),
    node: OrNull(Type.String()),
    gpu: OrNull(Type.String()),
    num_gpus: OrNull(Type.Integer()),
    since: OrNull(IsoTime),
    last_heartbeat: OrNull(IsoTime),
    load: OrNull(Type.Object({ running: Type.Integer(), waiting: Type.Integer(), kv_cache_usage: Type.Number({ minimum: 0, maximum: 1 }) })),
    restarts: Type.Integer(),
    download_progress: OrNull(Type.Number({ minimum: 0, maximum: 1 })),
  },
  { $id: "Replica" },
);

export const ReplicaList = Type.Object(
  {
    object: Type.Literal("list"),
    deploy_id: Type.String(),
    status: Type.Enum(DEPLOYMENT_STATUSES),
    runtime: OrNull(Type.Enum(["local", "kubernetes"])),
    observed_at: OrNull(IsoTime),
    data: Type.Array(Type.Ref("Replica")),
  },
  { $id: "ReplicaList" },
);

/** One line of `GET /deploy/{id}/logs` (NDJSON); an `error` line ends a broken stream. */
export const LogLine = Type.Object(
  { replica_id: Type.String(), source: Type.Enum(["engine", "agent"]), line: Type.String() },
  { $id: "LogLine", description: 'One line of application/x-ndjson. A stream that breaks off ends with one `{"error": …}` line.' },
);

export const ProfileList = Type.Object(
  {
    object: Type.Literal("list"),
    data: Type.Array(
      Type.Object({
        name: Type.String(),
        engine: Type.String(),
        description: OrNull(Type.String()),
        allowed_args: Type.Array(Type.Object({ flag: Type.String(), pattern: OrNull(Type.String()) })),
        gpu_types: Type.Array(Type.String(), { description: "Empty: any the cluster offers." }),
        max_num_gpus: Type.Integer(),
        max_instances: Type.Integer(),
      }),
    ),
    grant: Type.Object(
      {
        container_image: Type.Boolean(),
        extra_args: Type.Boolean(),
        gpu_quota: OrNull(Type.Integer({ description: "null: no quota." })),
        gpus_in_use: Type.Integer(),
      },
      { description: "What your key may do beyond the profiles (admin keys: everything), and your tenant's GPU quota." },
    ),
  },
  { $id: "DeployProfileList" },
);

export const ModelVersionsParams = Type.Object({ model_name: Type.String({ description: "May hold a slash (`tenant/model`)." }) });
