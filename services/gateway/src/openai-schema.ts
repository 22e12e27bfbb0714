/**
 * The OpenAI request bodies the gateway accepts, as JSON Schema (TypeBox): Fastify
 * validates with them (compiled once, at start), and the handlers' types come from them.
 * Chat completions, completions and embeddings are OpenAI's whole request schemas (every
 * field the official SDK's `ChatCompletionCreateParams`, `CompletionCreateParams` and
 * `EmbeddingCreateParams` types list, `request-fields.test.ts` checks it against them),
 * plus vLLM's sampling and structured-output extras. What each field does here — passed to
 * the engine, applied by the gateway, or accepted and ignored — is `request-fields.ts`.
 * Unknown attributes are rejected by name rather than dropped.
 */
import Type, { type Static } from "typebox";

const Nullable = <T extends Type.TSchema>(t: T) => Type.Optional(Type.Union([t, Type.Null()]));
const Obj = <T extends Type.TProperties>(props: T) => Type.Object(props, { additionalProperties: false });
/** A JSON object whose contents the gateway does not look into (a JSON Schema, kwargs for a template). */
const AnyObject = Type.Record(Type.String(), Type.Unknown());

const Stop = Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 0, maxItems: 16 }), Type.Null()]);

// ---- content parts ------------------------------------------------------------------------
const TextPart = Obj({ type: Type.Literal("text"), text: Type.String() });
const ImagePart = Obj({
  type: Type.Literal("image_url"),
  image_url: Obj({ url: Type.String({ minLength: 1 }), detail: Type.Optional(Type.Union([Type.Literal("auto"), Type.Literal("low"), Type.Literal("high")])) }),
});
const AudioPart = Obj({
  type: Type.Literal("input_audio"),
  input_audio: Obj({ data: Type.String({ minLength: 1 }), format: Type.Union([Type.Literal("wav"), Type.Literal("mp3")]) }),
});
const FilePart = Obj({
  type: Type.Literal("file"),
  file: Obj({ file_data: Type.Optional(Type.String()), file_id: Type.Optional(Type.String()), filename: Type.Optional(Type.String()) }),
});
const RefusalPart = Obj({ type: Type.Literal("refusal"), refusal: Type.String() });

const TextContent = Type.Union([Type.String(), Type.Array(TextPart, { minItems: 1 })]);
const UserContent = Type.Union([Type.String(), Type.Array(Type.Union([TextPart, ImagePart, AudioPart, FilePart]), { minItems: 1 })]);
const AssistantContent = Type.Union([Type.String(), Type.Array(Type.Union([TextPart, RefusalPart]), { minItems: 1 }), Type.Null()]);

// ---- messages ---------------------------------------------------------------------------
const FunctionToolCall = Obj({
  id: Type.String(),
  type: Type.Literal("function"),
  function: Obj({ name: Type.String(), arguments: Type.String() }),
});
const CustomToolCall = Obj({ id: Type.String(), type: Type.Literal("custom"), custom: Obj({ name: Type.String(), input: Type.String() }) });

export const ChatMessage = Type.Union([
  Obj({ role: Type.Literal("system"), content: TextContent, name: Type.Optional(Type.String()) }),
  Obj({ role: Type.Literal("developer"), content: TextContent, name: Type.Optional(Type.String()) }),
  Obj({ role: Type.Literal("user"), content: UserContent, name: Type.Optional(Type.String()) }),
  Obj({
    role: Type.Literal("assistant"),
    content: Type.Optional(AssistantContent),
    name: Type.Optional(Type.String()),
    tool_calls: Type.Optional(Type.Array(Type.Union([FunctionToolCall, CustomToolCall]))),
    refusal: Nullable(Type.String()),
    function_call: Nullable(Obj({ name: Type.String(), arguments: Type.String() })),
    audio: Nullable(Obj({ id: Type.String() })),
  }),
  Obj({ role: Type.Literal("tool"), content: TextContent, tool_call_id: Type.String() }),
  // Deprecated by OpenAI (tool messages replace it); still in its schema.
  Obj({ role: Type.Literal("function"), content: Type.Union([Type.String(), Type.Null()]), name: Type.String() }),
]);
export type ChatMessage = Static<typeof ChatMessage>;

// ---- tools --------------------------------------------------------------------------------
const FunctionDef = Obj({
  name: Type.String({ minLength: 1, maxLength: 64 }),
  description: Type.Optional(Type.String()),
  parameters: Type.Optional(AnyObject),
  strict: Nullable(Type.Boolean()),
});
const FunctionTool = Obj({ type: Type.Literal("function"), function: FunctionDef });
const CustomTool = Obj({
  type: Type.Literal("custom"),
  custom: Obj({
    name: Type.String({ minLength: 1 }),
    description: Type.Optional(Type.String()),
    format: Type.Optional(
      Type.Union([
        Obj({ type: Type.Literal("text") }),
        Obj({
          type: Type.Literal("grammar"),
          grammar: Obj({ definition: Type.String(), syntax: Type.Union([Type.Literal("lark"), Type.Literal("regex")]) }),
        }),
      ]),
    ),
  }),
});
const ToolChoice = Type.Union([
  Type.Literal("none"),
  Type.Literal("auto"),
  Type.Literal("required"),
  Obj({ type: Type.Literal("function"), function: Obj({ name: Type.String() }) }),
  Obj({ type: Type.Literal("custom"), custom: Obj({ name: Type.String() }) }),
  Obj({
    type: Type.Literal("allowed_tools"),
    allowed_tools: Obj({ mode: Type.Union([Type.Literal("auto"), Type.Literal("required")]), tools: Type.Array(AnyObject) }),
  }),
]);
/** Deprecated `functions` / `function_call` (OpenAI's schema keeps them; the gateway turns them into tools). */
const LegacyFunction = Obj({
  name: Type.String({ minLength: 1, maxLength: 64 }),
  description: Type.Optional(Type.String()),
  parameters: Type.Optional(AnyObject),
});
const LegacyFunctionCall = Type.Union([Type.Literal("none"), Type.Literal("auto"), Obj({ name: Type.String() })]);

const ResponseFormat = Type.Union([
  Obj({ type: Type.Literal("text") }),
  Obj({ type: Type.Literal("json_object") }),
  Obj({
    type: Type.Literal("json_schema"),
    json_schema: Obj({
      name: Type.String({ minLength: 1, maxLength: 64 }),
      description: Type.Optional(Type.String()),
      schema: Type.Optional(AnyObject),
      strict: Nullable(Type.Boolean()),
    }),
  }),
]);

const StreamOptions = Nullable(
  Obj({
    include_usage: Type.Optional(Type.Boolean()),
    include_obfuscation: Type.Optional(Type.Boolean()),
    continuous_usage_stats: Type.Optional(Type.Boolean()),
  }),
);

/** OpenAI's metadata: at most 16 pairs, keys up to 64 characters, values up to 512. */
const Metadata = Nullable(Type.Record(Type.String(), Type.String({ maxLength: 512 }), { maxProperties: 16, propertyNames: { maxLength: 64 } }));

/** vLLM's structured outputs (`structured_outputs`, vLLM ≥ 0.10; the `guided_*` fields are the older spelling). */
const StructuredOutputs = Obj({
  json: Type.Optional(Type.Union([Type.String(), AnyObject])),
  regex: Type.Optional(Type.String()),
  choice: Type.Optional(Type.Array(Type.String(), { minItems: 1 })),
  grammar: Type.Optional(Type.String()),
  json_object: Type.Optional(Type.Boolean()),
  structural_tag: Type.Optional(Type.String()),
  whitespace_pattern: Type.Optional(Type.String()),
  disable_any_whitespace: Type.Optional(Type.Boolean()),
  disable_additional_properties: Type.Optional(Type.Boolean()),
});

const TokenIds = Type.Array(Type.Integer({ minimum: 0 }));

/** Sampling attributes shared by chat and text completions: OpenAI's, then vLLM's extras. */
const Sampling = {
  model: Type.String({ minLength: 1, maxLength: 256 }),
  stream: Nullable(Type.Boolean()),
  stream_options: StreamOptions,
  max_tokens: Nullable(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
  temperature: Nullable(Type.Number({ minimum: 0, maximum: 2 })),
  top_p: Nullable(Type.Number({ minimum: 0, maximum: 1 })),
  n: Nullable(Type.Integer({ minimum: 1, maximum: 4 })),
  stop: Type.Optional(Stop),
  presence_penalty: Nullable(Type.Number({ minimum: -2, maximum: 2 })),
  frequency_penalty: Nullable(Type.Number({ minimum: -2, maximum: 2 })),
  logit_bias: Nullable(Type.Record(Type.String(), Type.Number({ minimum: -100, maximum: 100 }))),
  seed: Nullable(Type.Integer()),
  user: Type.Optional(Type.String({ maxLength: 256 })),
  // vLLM's sampling parameters.
  top_k: Nullable(Type.Integer({ minimum: -1 })),
  min_p: Nullable(Type.Number({ minimum: 0, maximum: 1 })),
  repetition_penalty: Nullable(Type.Number({ exclusiveMinimum: 0, maximum: 2 })),
  length_penalty: Nullable(Type.Number()),
  use_beam_search: Nullable(Type.Boolean()),
  stop_token_ids: Nullable(Type.Array(Type.Integer({ minimum: 0 }), { maxItems: 64 })),
  include_stop_str_in_output: Nullable(Type.Boolean()),
  ignore_eos: Nullable(Type.Boolean()),
  min_tokens: Nullable(Type.Integer({ minimum: 0 })),
  skip_special_tokens: Nullable(Type.Boolean()),
  spaces_between_special_tokens: Nullable(Type.Boolean()),
  truncate_prompt_tokens: Nullable(Type.Integer({ minimum: 1 })),
  prompt_logprobs: Nullable(Type.Integer({ minimum: 0, maximum: 20 })),
  allowed_token_ids: Nullable(TokenIds),
  bad_words: Nullable(Type.Array(Type.String(), { maxItems: 256 })),
  return_tokens_as_token_ids: Nullable(Type.Boolean()),
  return_token_ids: Nullable(Type.Boolean()),
  add_special_tokens: Nullable(Type.Boolean()),
  // vLLM's guided decoding.
  guided_json: Nullable(Type.Union([Type.String(), AnyObject])),
  guided_regex: Nullable(Type.String()),
  guided_choice: Nullable(Type.Array(Type.String(), { minItems: 1 })),
  guided_grammar: Nullable(Type.String()),
  guided_decoding_backend: Nullable(Type.String({ maxLength: 64 })),
  guided_whitespace_pattern: Nullable(Type.String()),
  structured_outputs: Nullable(StructuredOutputs),
  // Applied by the gateway.
  service_tier: Nullable(Type.Union([Type.Literal("auto"), Type.Literal("default"), Type.Literal("flex"), Type.Literal("scale"), Type.Literal("priority")])),
};

export const ChatCompletionRequest = Type.Object(
  {
    ...Sampling,
    messages: Type.Array(ChatMessage, { minItems: 1, maxItems: 4096 }),
    max_completion_tokens: Nullable(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    response_format: Type.Optional(ResponseFormat),
    tools: Type.Optional(Type.Array(Type.Union([FunctionTool, CustomTool]), { maxItems: 128 })),
    tool_choice: Type.Optional(ToolChoice),
    parallel_tool_calls: Nullable(Type.Boolean()),
    functions: Type.Optional(Type.Array(LegacyFunction, { minItems: 1, maxItems: 128 })),
    function_call: Type.Optional(LegacyFunctionCall),
    logprobs: Nullable(Type.Boolean()),
    top_logprobs: Nullable(Type.Integer({ minimum: 0, maximum: 20 })),
    audio: Nullable(
      Obj({
        format: Type.Union(["wav", "aac", "mp3", "flac", "opus", "pcm16"].map((f) => Type.Literal(f))),
        voice: Type.Union([Type.String(), Obj({ id: Type.String() })]),
      }),
    ),
    modalities: Nullable(Type.Array(Type.Union([Type.Literal("text"), Type.Literal("audio")]), { minItems: 1, maxItems: 2 })),
    prediction: Nullable(Obj({ type: Type.Literal("content"), content: TextContent })),
    metadata: Metadata,
    store: Nullable(Type.Boolean()),
    safety_identifier: Type.Optional(Type.String({ maxLength: 64 })),
    prompt_cache_key: Type.Optional(Type.String({ maxLength: 1024 })),
    prompt_cache_retention: Nullable(Type.Union([Type.Literal("in-memory"), Type.Literal("24h")])),
    reasoning_effort: Nullable(Type.Union(["none", "minimal", "low", "medium", "high", "xhigh"].map((e) => Type.Literal(e)))),
    verbosity: Nullable(Type.Union([Type.Literal("low"), Type.Literal("medium"), Type.Literal("high")])),
    web_search_options: Type.Optional(
      Obj({
        search_context_size: Type.Optional(Type.Union([Type.Literal("low"), Type.Literal("medium"), Type.Literal("high")])),
        user_location: Nullable(
          Obj({
            type: Type.Literal("approximate"),
            approximate: Obj({
              city: Type.Optional(Type.String()),
              country: Type.Optional(Type.String()),
              region: Type.Optional(Type.String()),
              timezone: Type.Optional(Type.String()),
            }),
          }),
        ),
      }),
    ),
    // vLLM's chat extras.
    chat_template_kwargs: Nullable(AnyObject),
    add_generation_prompt: Nullable(Type.Boolean()),
    continue_final_message: Nullable(Type.Boolean()),
    echo: Nullable(Type.Boolean()),
    documents: Nullable(Type.Array(Type.Record(Type.String(), Type.String()), { maxItems: 256 })),
    mm_processor_kwargs: Nullable(AnyObject),
  },
  { additionalProperties: false },
);
export type ChatCompletionRequest = Static<typeof ChatCompletionRequest>;

export const CompletionRequest = Type.Object(
  {
    ...Sampling,
    prompt: Type.Union([
      Type.String(),
      Type.Array(Type.String(), { minItems: 1, maxItems: 64 }),
      Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1 }),
      Type.Array(Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1 }), { minItems: 1, maxItems: 64 }),
      Type.Null(),
    ]),
    echo: Nullable(Type.Boolean()),
    logprobs: Nullable(Type.Integer({ minimum: 0, maximum: 5 })),
    best_of: Nullable(Type.Integer({ minimum: 1, maximum: 4 })),
    suffix: Nullable(Type.String()),
    response_format: Type.Optional(ResponseFormat),
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
    // vLLM's pooling extras.
    truncate_prompt_tokens: Nullable(Type.Integer({ minimum: 1 })),
    add_special_tokens: Nullable(Type.Boolean()),
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

// ---- vLLM's serving API beside OpenAI's ---------------------------------------------------

/** vLLM's `/rerank` (Jina's and Cohere's shape): documents ordered by relevance to the query. */
export const RerankRequest = Type.Object(
  {
    model: Type.String({ minLength: 1, maxLength: 256 }),
    query: Type.String(),
    documents: Type.Array(Type.Union([Type.String(), Obj({ text: Type.String() })]), { minItems: 1, maxItems: 1000 }),
    top_n: Nullable(Type.Integer({ minimum: 0 })),
    return_documents: Nullable(Type.Boolean()),
    truncate_prompt_tokens: Nullable(Type.Integer({ minimum: 1 })),
    user: Type.Optional(Type.String({ maxLength: 256 })),
  },
  { additionalProperties: false },
);
export type RerankRequest = Static<typeof RerankRequest>;

const ScoreTexts = Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1, maxItems: 1000 })]);
/** vLLM's `/score`: one text against many (or pairs), a relevance score each. */
export const ScoreRequest = Type.Object(
  {
    model: Type.String({ minLength: 1, maxLength: 256 }),
    text_1: ScoreTexts,
    text_2: ScoreTexts,
    truncate_prompt_tokens: Nullable(Type.Integer({ minimum: 1 })),
    user: Type.Optional(Type.String({ maxLength: 256 })),
  },
  { additionalProperties: false },
);
export type ScoreRequest = Static<typeof ScoreRequest>;

/** vLLM's `/tokenize`: a prompt, or chat messages through the model's template. */
export const TokenizeRequest = Type.Object(
  {
    model: Type.String({ minLength: 1, maxLength: 256 }),
    prompt: Type.Optional(Type.String()),
    messages: Type.Optional(Type.Array(ChatMessage, { minItems: 1, maxItems: 4096 })),
    add_special_tokens: Nullable(Type.Boolean()),
    add_generation_prompt: Nullable(Type.Boolean()),
    return_token_strs: Nullable(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type TokenizeRequest = Static<typeof TokenizeRequest>;

/** vLLM's `/detokenize`. */
export const DetokenizeRequest = Type.Object(
  { model: Type.String({ minLength: 1, maxLength: 256 }), tokens: Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1, maxItems: 1_000_000 }) },
  { additionalProperties: false },
);
export type DetokenizeRequest = Static<typeof DetokenizeRequest>;
