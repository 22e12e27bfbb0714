/**
 * The names every process agrees on, declared once: the engines a replica can run, the
 * tasks a model serves, the endpoints a request can be for. Each is a list (for config
 * readers and schemas) and the union type it spells. (Placement policy names belong to
 * `@infera/policy`, which defines the policies.)
 */

/** The engine behind a replica (what the agent's adapter speaks, what the runtime starts). */
export const ENGINE_KINDS = ["vllm", "tgi", "tei", "image"] as const;
export type EngineKind = (typeof ENGINE_KINDS)[number];

/** What a model does. */
export const TASKS = ["chat", "embeddings", "images"] as const;
export type Task = (typeof TASKS)[number];

/** The endpoint a request came in on (OpenAI's, then vLLM's serving API), as the queue and the agent name it. */
export const ENDPOINT_KINDS = ["chat", "completion", "embedding", "image", "rerank", "score", "tokenize", "detokenize"] as const;
export type EndpointKind = (typeof ENDPOINT_KINDS)[number];

/** What a model takes as input: text, and OpenAI's content parts `image_url`, `input_audio`, `file`. */
export const MODALITIES = ["text", "image", "audio", "file"] as const;
export type Modality = (typeof MODALITIES)[number];
