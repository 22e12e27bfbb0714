/**
 * The OpenAI request bodies the gateway accepts, as JSON Schema (TypeBox): Fastify
 * validates with them, and the handlers' types come from them. Unknown attributes are
 * rejected by name rather than dropped.
 */
import Type, { type Static } from "typebox";

const Stop = Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 0, maxItems: 16 }), Type.Null()]);

const TextPart = Type.Object({ type: Type.Literal("text"), text: Type.String() }, { additionalProperties: false });
const Content = Type.Union([Type.String(), Type.Array(TextPart, { minItems: 1 })]);

const ToolCall = Type.Object(
  {
    id: Type.String(),
    type: Type.Literal("function"),
    function: Type.Object({ name: Type.String(), arguments: Type.String() }, { additionalProperties: false }),
  },
  { additionalProperties: false },
);

export const ChatMessage = Type.Union([
  Type.Object({ role: Type.Literal("system"), content: Content, name: Type.Optional(Type.String()) }, { additionalProperties: false }),
  Type.Object({ role: Type.Literal("developer"), content: Content, name: Type.Optional(Type.String()) }, { additionalProperties: false }),
  Type.Object({ role: Type.Literal("user"), content: Content, name: Type.Optional(Type.String()) }, { additionalProperties: false }),
  Type.Object(
    {
      role: Type.Literal("assistant"),
      content: Type.Optional(Type.Union([Content, Type.Null()])),
      name: Type.Optional(Type.String()),
      tool_calls: Type.Optional(Type.Array(ToolCall)),
      refusal: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    },
    { additionalProperties: false },
  ),
  Type.Object({ role: Type.Literal("tool"), content: Content, tool_call_id: Type.String() }, { additionalProperties: false }),
]);

const FunctionDef = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64 }),
    description: Type.Optional(Type.String()),
    parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    strict: Type.Optional(Type.Union([Type.Boolean(), Type.Null()])),
  },
  { additionalProperties: false },
);
const Tool = Type.Object({ type: Type.Literal("function"), function: FunctionDef }, { additionalProperties: false });
const ToolChoice = Type.Union([
  Type.Literal("none"),
  Type.Literal("auto"),
  Type.Literal("required"),
  Type.Object(
    { type: Type.Literal("function"), function: Type.Object({ name: Type.String() }, { additionalProperties: false }) },
    { additionalProperties: false },
  ),
]);

const ResponseFormat = Type.Union([
  Type.Object({ type: Type.Literal("text") }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal("json_object") }, { additionalProperties: false }),
  Type.Object(
    {
      type: Type.Literal("json_schema"),
      json_schema: Type.Object(
        {
          name: Type.String(),
          description: Type.Optional(Type.String()),
          schema: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
          strict: Type.Optional(Type.Union([Type.Boolean(), Type.Null()])),
        },
        { additionalProperties: false },
      ),
    },
    { additionalProperties: false },
  ),
]);

const StreamOptions = Type.Union([
  Type.Object({ include_usage: Type.Optional(Type.Boolean()), continuous_usage_stats: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
  Type.Null(),
]);

const Nullable = <T extends Type.TSchema>(t: T) => Type.Optional(Type.Union([t, Type.Null()]));

/** Sampling attributes shared by chat and text completions. */
const Sampling = {
  model: Type.String({ minLength: 1, maxLength: 256 }),
  stream: Nullable(Type.Boolean()),
  stream_options: Type.Optional(StreamOptions),
  max_tokens: Nullable(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
  temperature: Nullable(Type.Number({ minimum: 0, maximum: 2 })),
  top_p: Nullable(Type.Number({ minimum: 0, maximum: 1 })),
  n: Nullable(Type.Integer({ minimum: 1, maximum: 4 })),
  stop: Type.Optional(Stop),
  presence_penalty: Nullable(Type.Number({ minimum: -2, maximum: 2 })),
  frequency_penalty: Nullable(Type.Number({ minimum: -2, maximum: 2 })),
  seed: Nullable(Type.Integer()),
  user: Type.Optional(Type.String({ maxLength: 256 })),
  top_k: Nullable(Type.Integer({ minimum: -1 })),
  min_p: Nullable(Type.Number({ minimum: 0, maximum: 1 })),
  repetition_penalty: Nullable(Type.Number({ exclusiveMinimum: 0, maximum: 2 })),
  service_tier: Nullable(Type.Union([Type.Literal("auto"), Type.Literal("default"), Type.Literal("priority"), Type.Literal("flex")])),
};

export const ChatCompletionRequest = Type.Object(
  {
    ...Sampling,
    messages: Type.Array(ChatMessage, { minItems: 1, maxItems: 4096 }),
    max_completion_tokens: Nullable(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    response_format: Type.Optional(ResponseFormat),
    tools: Type.Optional(Type.Array(Tool, { maxItems: 128 })),
    tool_choice: Type.Optional(ToolChoice),
    parallel_tool_calls: Type.Optional(Type.Boolean()),
    logprobs: Nullable(Type.Boolean()),
    top_logprobs: Nullable(Type.Integer({ minimum: 0, maximum: 20 })),
    logit_bias: Nullable(Type.Record(Type.String(), Type.Number({ minimum: -100, maximum: 100 }))),
  },
  { additionalProperties: false },
);
export type ChatCompletionRequest = Static<typeof ChatCompletionRequest>;

export const CompletionRequest = Type.Object(
  {
    ...Sampling,
    prompt: Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1, maxItems: 1 }), Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1 })]),
    echo: Nullable(Type.Boolean()),
    logprobs: Nullable(Type.Integer({ minimum: 0, maximum: 5 })),
    best_of: Nullable(Type.Integer({ minimum: 1, maximum: 4 })),
    suffix: Nullable(Type.String()),
    logit_bias: Nullable(Type.Record(Type.String(), Type.Number({ minimum: -100, maximum: 100 }))),
  },
  { additionalProperties: false },
);
export type CompletionRequest = Static<typeof CompletionRequest>;

export const EmbeddingRequest = Type.Object(
  {
    model: Type.String({ minLength: 1, maxLength: 256 }),
    input: Type.Union([
      Type.String(),
      Type.Array(Type.String(), { minItems: 1, maxItems: 2048 }),
      Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1 }),
      Type.Array(Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1 }), { minItems: 1, maxItems: 2048 }),
    ]),
    encoding_format: Type.Optional(Type.Union([Type.Literal("float"), Type.Literal("base64")])),
    dimensions: Type.Optional(Type.Integer({ minimum: 1, maximum: 65536 })),
    user: Type.Optional(Type.String({ maxLength: 256 })),
  },
  { additionalProperties: false },
);
export type EmbeddingRequest = Static<typeof EmbeddingRequest>;

export const ImageRequest = Type.Object(
  {
    prompt: Type.String({ minLength: 1, maxLength: 4000 }),
    model: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    n: Nullable(Type.Integer({ minimum: 1, maximum: 4 })),
    size: Nullable(Type.String()),
    quality: Nullable(
      Type.Union([Type.Literal("standard"), Type.Literal("hd"), Type.Literal("auto"), Type.Literal("high"), Type.Literal("medium"), Type.Literal("low")]),
    ),
    style: Nullable(Type.Union([Type.Literal("vivid"), Type.Literal("natural")])),
    response_format: Nullable(Type.Union([Type.Literal("b64_json"), Type.Literal("url")])),
    user: Type.Optional(Type.String({ maxLength: 256 })),
    seed: Nullable(Type.Integer()),
  },
  { additionalProperties: false },
);
export type ImageRequest = Static<typeof ImageRequest>;
