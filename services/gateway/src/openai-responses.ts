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

function answers(json: Json, stream?: string | Json) {
  return {
    200: {
      description:
        typeof stream === "string"
          ? "The answer, or with `stream: true` Server-Sent Events: one chunk per `data:` line, then `data: [DONE]`."
          : stream
            ? "The answer, or with `stream: true` Server-Sent Events: each an `event:` line naming its type and a `data:` line, the event (no `[DONE]`)."
            : "The answer.",
      content: {
        "application/json": { schema: json },
        ...(stream ? { "text/event-stream": { schema: typeof stream === "string" ? ref(stream) : stream } } : {}),
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

// The Responses API (OpenAI's Response object, input items, stream events), as far as the platform answers them.
const nullable = (t: Json) => ({ anyOf: [t, { type: "null" }] });
const OUTPUT_TEXT = {
  type: "object",
  required: ["type", "text", "annotations"],
  properties: { type: { const: "output_text" }, text: str, annotations: { type: "array", maxItems: 0 }, logprobs: { type: "array" } },
};
const OUTPUT_MESSAGE = {
  type: "object",
  required: ["id", "type", "role", "status", "content"],
  properties: {
    id: str,
    type: { const: "message" },
    role: { const: "assistant" },
    status: { enum: ["in_progress", "completed", "incomplete"] },
    content: { type: "array", items: OUTPUT_TEXT },
  },
};
const FUNCTION_CALL = {
  type: "object",
  required: ["id", "type", "call_id", "name", "arguments", "status"],
  properties: {
    id: str,
    type: { const: "function_call" },
    call_id: str,
    name: str,
    arguments: str,
    status: { enum: ["in_progress", "completed", "incomplete"] },
  },
};
const OUTPUT_ITEM = { anyOf: [OUTPUT_MESSAGE, FUNCTION_CALL] };
const INPUT_ITEM = {
  anyOf: [
    {
      type: "object",
      required: ["id", "type", "role", "content"],
      properties: {
        id: str,
        type: { const: "message" },
        role: { enum: ["user", "assistant", "system", "developer"] },
        status: str,
        content: { type: "array", items: { type: "object", required: ["type"], properties: { type: { enum: ["input_text", "output_text", "input_image"] } } } },
      },
    },
    FUNCTION_CALL,
    {
      type: "object",
      required: ["id", "type", "call_id", "output"],
      properties: { id: str, type: { const: "function_call_output" }, call_id: str, output: str, status: str },
    },
    {
      type: "object",
      required: ["id", "type", "summary"],
      properties: { id: str, type: { const: "reasoning" }, summary: { type: "array", items: { type: "object", required: ["type", "text"] } } },
    },
  ],
};
const RESPONSE_USAGE = {
  type: "object",
  required: ["input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details", "total_tokens"],
  properties: {
    input_tokens: int,
    input_tokens_details: { type: "object", required: ["cached_tokens"], properties: { cached_tokens: int } },
    output_tokens: int,
    output_tokens_details: { type: "object", required: ["reasoning_tokens"], properties: { reasoning_tokens: int } },
    total_tokens: int,
    estimated_cost: num,
  },
};
const RESPONSE = {
  type: "object",
  required: [
    "id",
    "object",
    "created_at",
    "status",
    "error",
    "incomplete_details",
    "instructions",
    "metadata",
    "model",
    "output",
    "parallel_tool_calls",
    "temperature",
    "tool_choice",
    "tools",
    "top_p",
  ],
  properties: {
    id: { type: "string", pattern: "^resp_" },
    object: { const: "response" },
    created_at: int,
    status: { enum: ["completed", "incomplete", "failed", "in_progress"] },
    error: nullable({ type: "object", required: ["code", "message"], properties: { code: str, message: str } }),
    incomplete_details: nullable({ type: "object", required: ["reason"], properties: { reason: { enum: ["max_output_tokens", "content_filter"] } } }),
    instructions: nullable(str),
    max_output_tokens: nullable(int),
    max_tool_calls: nullable(int),
    metadata: { type: "object", additionalProperties: str },
    model: str,
    output: { type: "array", items: OUTPUT_ITEM },
    parallel_tool_calls: { type: "boolean" },
    previous_response_id: nullable(str),
    store: { type: "boolean" },
    temperature: nullable(num),
    text: { type: "object", properties: { format: { type: "object", required: ["type"] } } },
    tool_choice: { anyOf: [str, { type: "object" }] },
    tools: { type: "array", items: { type: "object", required: ["type", "name"], properties: { type: { const: "function" }, name: str } } },
    top_logprobs: int,
    top_p: nullable(num),
    usage: nullable(RESPONSE_USAGE),
    user: nullable(str),
  },
};
const RESPONSE_EVENT = {
  type: "object",
  required: ["type", "sequence_number"],
  properties: {
    type: {
      enum: [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
        "response.incomplete",
        "response.failed",
        "error",
      ],
    },
    sequence_number: int,
    response: RESPONSE,
    item: OUTPUT_ITEM,
    item_id: str,
    output_index: int,
    content_index: int,
    part: OUTPUT_TEXT,
    delta: str,
    text: str,
    arguments: str,
    code: str,
    message: str,
  },
};
const RESPONSE_ITEMS = {
  type: "object",
  required: ["object", "data", "first_id", "last_id", "has_more"],
  properties: {
    object: { const: "list" },
    data: { type: "array", items: INPUT_ITEM },
    first_id: nullable(str),
    last_id: nullable(str),
    has_more: { type: "boolean" },
  },
};
const RESPONSE_DELETED = {
  type: "object",
  required: ["id", "object", "deleted"],
  properties: { id: str, object: { const: "response" }, deleted: { const: true } },
};

/** The OpenAI routes' documentation, by path under the API's prefix (`/v1/openai`, `/v1`), or by `METHOD path` where methods differ. */
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
  "/responses": { summary: "Create a response (the Responses API, served on the chat path)", response: answers(RESPONSE, RESPONSE_EVENT) },
  "GET /responses/{id}": { summary: "A stored response", response: answers(RESPONSE) },
  "DELETE /responses/{id}": { summary: "Delete a stored response", response: answers(RESPONSE_DELETED) },
  "/responses/{id}/input_items": { summary: "A stored response's input items", response: answers(RESPONSE_ITEMS) },
  "POST /files": {
    summary: "Upload a batch input file (multipart/form-data: file, purpose `batch`); checked line by line",
    response: answers(ref("OpenAIFile")),
  },
  "GET /files": { summary: "List your files (purpose, limit, after, order)", response: answers(ref("ListFilesResponse")) },
  "GET /files/{file_id}": { summary: "A file", response: answers(ref("OpenAIFile")) },
  "DELETE /files/{file_id}": { summary: "Delete a file", response: answers(ref("DeleteFileResponse")) },
  "POST /batches": { summary: "Create a batch from an uploaded input file (endpoint, completion_window 24h, metadata)", response: answers(ref("Batch")) },
  "GET /batches": { summary: "List your batches, newest first (after, limit)", response: answers(ref("ListBatchesResponse")) },
  "GET /batches/{id}": { summary: "A batch, with its request counts so far", response: answers(ref("Batch")) },
  "/batches/{id}/cancel": { summary: "Cancel a batch: cancelling, then cancelled with what was answered", response: answers(ref("Batch")) },
  "/files/{file_id}/content": {
    summary: "A file's content, as uploaded or written",
    response: {
      200: { description: "The file's bytes.", content: { "application/octet-stream": { schema: { type: "string", format: "binary" } } } },
      "4xx": error,
      "5xx": error,
    },
  },
};
