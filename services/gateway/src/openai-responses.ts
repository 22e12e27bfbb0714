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
};
