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
