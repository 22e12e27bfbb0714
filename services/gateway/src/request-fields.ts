/**
 * What happens to every request field the gateway accepts (one table, the source of
 * docs/openai-request-fields.md, which a test keeps equal to it):
 * - `engine`: passed to the engine as sent (vLLM understands it; for TGI the agent maps what
 *   TGI has and `capabilities.ts` refuses the rest with a 400 before the queue);
 * - `gateway`: applied here (routing, priority, usage records, logs) and not sent on;
 * - `ignored`: accepted because OpenAI documents it, not sent on, with the reason.
 * The type makes the table name every field of the schema, so a new field cannot be
 * forgotten.
 */
import type { ChatCompletionRequest, CompletionRequest, EmbeddingRequest } from "./openai-schema.ts";

export type FieldRule = { to: "engine"; note?: string } | { to: "gateway"; what: string } | { to: "ignored"; why: string };

type Rules<T> = { readonly [K in keyof Required<T>]: FieldRule };

const engine = (note?: string): FieldRule => (note ? { to: "engine", note } : { to: "engine" });
const gateway = (what: string): FieldRule => ({ to: "gateway", what });
const ignored = (why: string): FieldRule => ({ to: "ignored", why });

const MODEL = gateway("resolved to a deployment (`name`, `name:version`, `deploy_id:ID`); the engine gets its served name");
const USER = gateway("kept on the usage record (`end_user`) and in the request log; not sent on");
const SERVICE_TIER = gateway("`priority` puts the request in the priority class (as a priority key does); kept on the usage record");
const STREAM_OPTIONS = gateway(
  "`include_usage` adds OpenAI's usage-only chunk (usage then only there); the engine is always asked for usage; `include_obfuscation` is ignored (no obfuscation padding is added)",
);
const STRUCTURED = engine("vLLM structured outputs; TGI: JSON schema and regex become its grammar, the rest is a 400");
const VLLM_ONLY = engine("vLLM; a 400 on TGI");

const SAMPLING = {
  model: MODEL,
  stream: engine(),
  stream_options: STREAM_OPTIONS,
  max_tokens: engine(),
  temperature: engine(),
  top_p: engine(),
  n: engine("TGI: only 1"),
  stop: engine("TGI: at most 4"),
  presence_penalty: engine(),
  frequency_penalty: engine(),
  logit_bias: engine("TGI: a 400"),
  seed: engine(),
  user: USER,
  top_k: engine("vLLM; TGI completions (not its chat API)"),
  min_p: VLLM_ONLY,
  repetition_penalty: engine("vLLM; TGI completions (not its chat API)"),
  length_penalty: VLLM_ONLY,
  use_beam_search: VLLM_ONLY,
  stop_token_ids: VLLM_ONLY,
  include_stop_str_in_output: VLLM_ONLY,
  ignore_eos: VLLM_ONLY,
  min_tokens: VLLM_ONLY,
  skip_special_tokens: VLLM_ONLY,
  spaces_between_special_tokens: VLLM_ONLY,
  truncate_prompt_tokens: VLLM_ONLY,
  prompt_logprobs: VLLM_ONLY,
  allowed_token_ids: VLLM_ONLY,
  bad_words: VLLM_ONLY,
  return_tokens_as_token_ids: VLLM_ONLY,
  return_token_ids: VLLM_ONLY,
  add_special_tokens: VLLM_ONLY,
  guided_json: STRUCTURED,
  guided_regex: STRUCTURED,
  guided_choice: STRUCTURED,
  guided_grammar: VLLM_ONLY,
  guided_decoding_backend: VLLM_ONLY,
  guided_whitespace_pattern: VLLM_ONLY,
  structured_outputs: engine("vLLM; TGI: `json` and `regex` become its grammar, the rest is a 400"),
  service_tier: SERVICE_TIER,
} as const;

export const CHAT_FIELDS: Rules<ChatCompletionRequest> = {
  ...SAMPLING,
  messages: engine("content parts beyond text (`image_url`, `input_audio`, `file`) only for a model registered with that modality, else a 400"),
  max_completion_tokens: engine("TGI: sent as max_tokens"),
  response_format: engine(),
  tools: engine("`custom` tools: a 400 (no engine here runs free-form tools)"),
  tool_choice: engine("`allowed_tools` is applied by the gateway: `tools` cut to the allowed ones, `mode` as the choice"),
  parallel_tool_calls: engine("TGI: ignored by it"),
  functions: gateway("deprecated by OpenAI: sent to the engine as the equivalent `tools`"),
  function_call: gateway("deprecated by OpenAI: sent to the engine as the equivalent `tool_choice`"),
  logprobs: engine(),
  top_logprobs: engine("TGI: at most 5"),
  audio: ignored('parameters of audio output, which needs `modalities: ["audio"]`: no model here speaks, so that is a 400'),
  modalities: gateway('`["text"]` is what every model answers; `audio` output is a 400 naming the model'),
  prediction: ignored("predicted outputs only make a rewrite faster; engines here have no per-request speculation, and the answer is the same without it"),
  metadata: gateway("kept on the usage record and in the request log; not sent on"),
  store: ignored("there is no stored-completions API here: nothing is kept beyond the usage record"),
  safety_identifier: gateway("kept on the usage record and in the request log; not sent on"),
  prompt_cache_key: gateway("placement hint: requests with the same key prefer the replica that served it last (prefix affinity); not sent on"),
  prompt_cache_retention: ignored("how long a prefix stays cached is the engine's (vLLM's prefix cache evicts by LRU)"),
  reasoning_effort: engine("vLLM hands it to the chat template (reasoning models); TGI: a 400"),
  verbosity: ignored("a hint for OpenAI's GPT-5 models; open-weights engines have no such control (max_tokens bounds the length)"),
  web_search_options: gateway("a 400: no model here searches the web"),
  chat_template_kwargs: engine("vLLM (e.g. `enable_thinking`); TGI: a 400"),
  add_generation_prompt: VLLM_ONLY,
  continue_final_message: VLLM_ONLY,
  echo: VLLM_ONLY,
  documents: VLLM_ONLY,
  mm_processor_kwargs: VLLM_ONLY,
};

export const COMPLETION_FIELDS: Rules<CompletionRequest> = {
  ...SAMPLING,
  prompt: engine("`null` is sent as an empty prompt (the engine starts from its BOS); TGI: one text prompt"),
  echo: engine(),
  logprobs: engine("TGI: a 400"),
  best_of: engine("TGI: only 1"),
  suffix: engine("vLLM refuses it (400)"),
  response_format: engine("vLLM; TGI: a 400"),
};

export const EMBEDDING_FIELDS: Rules<EmbeddingRequest> = {
  model: MODEL,
  input: engine(),
  encoding_format: engine("TEI: the agent encodes base64 itself"),
  dimensions: engine(),
  user: USER,
  truncate_prompt_tokens: engine("vLLM; TEI: `truncate: true`"),
  add_special_tokens: engine("vLLM; TEI: a 400"),
};

/** The fields of a table that go to the engine as sent. */
export function engineFields(rules: Record<string, FieldRule>): ReadonlySet<string> {
  return new Set(
    Object.entries(rules)
      .filter(([, r]) => r.to === "engine")
      .map(([k]) => k),
  );
}
