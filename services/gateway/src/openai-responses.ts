/**
 * OpenAI's response schemas (openai-responses.json: transcribed from OpenAI's published spec,
 * deviations listed in it) as the gateway's /openapi.json serves them, and how each OpenAI route
 * answers: JSON, or with `stream: true` Server-Sent Events whose `data:` lines are chunks, ending
 * with `data: [DONE]`. The same file is what the tests validate the OpenAI answers against.
 */
import type { TSchema } from "typebox";
import spec from "./openai-responses.json" with { type: "json" };

type Json = unknown;

/** `#/components/schemas/X` → `X`: each component becomes a schema with that `$id`. */
function byId(v: Json): Json {
  if (Array.isArray(v)) return v.map(byId);
  if (v && typeof v === "object") {
    const out: Record<string, Json> = {};
    for (const [k, x] of Object.entries(v)) out[k] = k === "$ref" && typeof x === "string" ? x.replace("#/components/schemas/", "") : byId(x);
    return out;
  }
  return v;
}

export const OPENAI_SCHEMAS: readonly TSchema[] = Object.entries(spec.components.schemas).map(
  ([name, schema]) => ({ $id: name, ...(byId(schema) as object) }) as unknown as TSchema,
);

const ref = (id: string) => ({ $ref: id });
const error = { description: "OpenAI's error JSON; `param` names the attribute at fault.", content: { "application/json": { schema: ref("ErrorResponse") } } };

function answers(json: Json, stream?: string) {
  return {
    200: {
      description: stream ? "The answer, or with `stream: true` Server-Sent Events: one chunk per `data:` line, then `data: [DONE]`." : "The answer.",
      content: {
        "application/json": { schema: json },
        ...(stream ? { "text/event-stream": { schema: ref(stream) } } : {}),
      },
    },
    "4xx": error,
    "5xx": error,
  };
}

const int = { type: "integer" };
const num = { type: "number" };
const str = { type: "string" };
const RERANK = {
  type: "object",
  required: ["id", "model", "usage", "results"],
  properties: {
    id: str,
    model: str,
    usage: { type: "object", required: ["total_tokens"], properties: { total_tokens: int, estimated_cost: num } },
    results: {
      type: "array",
      items: {
        type: "object",
        required: ["index", "relevance_score"],
        properties: {
          index: int,
          relevance_score: num,
          document: { anyOf: [{ type: "object", required: ["text"], properties: { text: str } }, { type: "null" }] },
        },
      },
    },
  },
};
const SCORE = {
  type: "object",
  required: ["object", "model", "data", "usage"],
  properties: {
    id: str,
    object: { const: "list" },
    created: int,
    model: str,
    data: {
      type: "array",
      items: { type: "object", required: ["index", "object", "score"], properties: { index: int, object: { const: "score" }, score: num } },
    },
    usage: {
      type: "object",
      required: ["prompt_tokens", "total_tokens"],
      properties: { prompt_tokens: int, total_tokens: int, completion_tokens: int, estimated_cost: num },
    },
  },
};
const TOKENIZE = {
  type: "object",
  required: ["count", "tokens"],
  properties: {
    count: int,
    max_model_len: { anyOf: [int, { type: "null" }] },
    tokens: { type: "array", items: int },
    token_strs: { anyOf: [{ type: "array", items: str }, { type: "null" }] },
  },
};
const DETOKENIZE = { type: "object", required: ["prompt"], properties: { prompt: str } };

/** The OpenAI routes' documentation, by path under the API's prefix (`/v1/openai`, `/v1`). */
export const OPENAI_ROUTE_DOCS: Record<string, { summary: string; response: Record<string, unknown> }> = {
  "/chat/completions": { summary: "Create a chat completion", response: answers(ref("CreateChatCompletionResponse"), "CreateChatCompletionStreamResponse") },
  "/completions": { summary: "Create a completion from a raw prompt", response: answers(ref("CreateCompletionResponse"), "CreateCompletionStreamResponse") },
  "/embeddings": {
    summary: "Create embeddings",
    response: answers({ anyOf: [ref("CreateEmbeddingResponse"), ref("CreateEmbeddingResponseBase64")] }),
  },
  "/images/generations": { summary: "Generate images", response: answers(ref("ImagesResponse")) },
  "/models": { summary: "List the models your key can call", response: answers(ref("ListModelsResponse")) },
  "/models/{model}": { summary: "One model", response: answers(ref("Model")) },
  // vLLM's serving API beside OpenAI's (its shapes; usage with the cost beside it).
  "/rerank": { summary: "Rerank documents by relevance to a query (vLLM's /rerank)", response: answers(RERANK) },
  "/score": { summary: "Score one text against others, or pairs (vLLM's /score)", response: answers(SCORE) },
  "/tokenize": { summary: "Tokenize a prompt or chat messages (vLLM's /tokenize)", response: answers(TOKENIZE) },
  "/detokenize": { summary: "Turn token ids back into text (vLLM's /detokenize)", response: answers(DETOKENIZE) },
};
