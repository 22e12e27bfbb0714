/**
 * Which request attributes each engine can serve, and which input modalities the model
 * takes. The gateway knows the deployment's engine and the model's modalities (from the
 * registry), so a request asking for something they cannot do is a 400 that names the
 * attribute, before it reaches the queue, never silently dropped. Also the cross-field
 * rules JSON Schema cannot express (top_logprobs needs logprobs, stream_options needs stream).
 */
import { PlatformError } from "@infera/core";
import type { EngineKind, Modality } from "@infera/contracts";
import type {
  ChatCompletionRequest,
  CompletionRequest,
  DetokenizeRequest,
  EmbeddingRequest,
  RerankRequest,
  ScoreRequest,
  TokenizeRequest,
} from "./openai-schema.ts";

/** TGI's router defaults: `--max-stop-sequences 4`, `--max-top-n-tokens 5`. */
const TGI_MAX_STOP = 4;
const TGI_MAX_TOP_N = 5;

const ENGINE_NAME: Record<EngineKind, string> = {
  vllm: "vLLM",
  tgi: "text-generation-inference",
  tei: "text-embeddings-inference",
  image: "the image server",
};

/** vLLM's extras TGI has no equivalent for, on either API. */
const VLLM_ONLY = [
  "min_p",
  "length_penalty",
  "use_beam_search",
  "stop_token_ids",
  "include_stop_str_in_output",
  "ignore_eos",
  "min_tokens",
  "skip_special_tokens",
  "spaces_between_special_tokens",
  "truncate_prompt_tokens",
  "prompt_logprobs",
  "allowed_token_ids",
  "bad_words",
  "return_tokens_as_token_ids",
  "return_token_ids",
  "add_special_tokens",
  "guided_grammar",
  "guided_decoding_backend",
  "guided_whitespace_pattern",
  "logit_bias",
] as const;
const VLLM_ONLY_CHAT = [
  "reasoning_effort",
  "chat_template_kwargs",
  "add_generation_prompt",
  "continue_final_message",
  "echo",
  "documents",
  "mm_processor_kwargs",
];

const PART_MODALITY: Record<string, Modality> = { image_url: "image", input_audio: "audio", file: "file" };
const MODALITY_NAME: Record<Modality, string> = { text: "text", image: "image", audio: "audio", file: "file" };

function unsupported(engine: EngineKind, param: string, what: string): PlatformError {
  return new PlatformError("invalid_request", `'${param}'${what ? ` ${what}` : ""} is not supported by this model (served by ${ENGINE_NAME[engine]}).`, {
    param,
  });
}

const set = (v: unknown): boolean => v !== undefined && v !== null;

function stopCount(stop: string | string[] | null | undefined): number {
  if (stop == null) return 0;
  return typeof stop === "string" ? 1 : stop.length;
}

/** Rules every engine shares. */
function common(body: { stream?: boolean | null; stream_options?: unknown }): void {
  if (set(body.stream_options) && body.stream !== true) {
    throw new PlatformError("invalid_request", "The 'stream_options' parameter is only allowed when 'stream' is enabled.", { param: "stream_options" });
  }
}

/** vLLM's structured outputs as TGI's grammar: only a JSON schema or a regex (or a choice, as a regex). */
function tgiStructured(engine: EngineKind, body: Record<string, unknown>): void {
  const so = body.structured_outputs as Record<string, unknown> | null | undefined;
  if (so) {
    for (const k of Object.keys(so)) if (k !== "json" && k !== "regex" && k !== "choice") throw unsupported(engine, `structured_outputs.${k}`, "");
  }
  for (const k of VLLM_ONLY) if (set(body[k])) throw unsupported(engine, k, "");
}

/** Content parts beyond text need a model registered with that modality. */
function checkModalities(body: ChatCompletionRequest, modelName: string, modalities: readonly Modality[]): void {
  body.messages.forEach((m, i) => {
    if (!Array.isArray(m.content)) return;
    m.content.forEach((part, j) => {
      const modality = PART_MODALITY[part.type];
      if (modality === undefined) return;
      const param = `messages[${i}].content[${j}]`;
      if (!modalities.includes(modality)) {
        throw new PlatformError("invalid_request", `The model '${modelName}' does not accept ${MODALITY_NAME[modality]} input (content part '${part.type}').`, {
          param,
        });
      }
      if (part.type === "file" && !part.file.file_data) {
        throw new PlatformError(
          "invalid_request",
          part.file.file_id
            ? "'file_id' needs a Files API, which this platform does not have: send the file as 'file_data'."
            : "A file part needs 'file_data'.",
          { param: `${param}.file` },
        );
      }
      if (part.type === "image_url" && !/^(https?:|data:image\/[\w.+-]+;base64,)/.test(part.image_url.url)) {
        throw new PlatformError("invalid_request", "'image_url.url' must be an http(s) URL or a data:image/…;base64, URI.", {
          param: `${param}.image_url.url`,
        });
      }
    });
  });
}

export function checkChat(engine: EngineKind, body: ChatCompletionRequest, model: { name: string; modalities: readonly Modality[] }): void {
  common(body);
  if (set(body.top_logprobs) && body.logprobs !== true) {
    throw new PlatformError("invalid_request", "'top_logprobs' requires 'logprobs' to be true.", { param: "top_logprobs" });
  }
  if (body.web_search_options !== undefined) {
    throw new PlatformError("invalid_request", `The model '${model.name}' cannot search the web ('web_search_options').`, { param: "web_search_options" });
  }
  if (body.modalities?.includes("audio")) {
    throw new PlatformError("invalid_request", `The model '${model.name}' does not produce audio output.`, { param: "modalities" });
  }
  if (body.tools?.some((t) => t.type === "custom") || (typeof body.tool_choice === "object" && body.tool_choice.type === "custom")) {
    throw unsupported(engine, "tools", "of type 'custom'");
  }
  if (body.functions && body.tools) {
    throw new PlatformError("invalid_request", "Send 'tools' or the deprecated 'functions', not both.", { param: "functions" });
  }
  checkModalities(body, model.name, model.modalities);
  if (engine !== "tgi") return;
  // TGI's Messages API: no n, no top_k/repetition_penalty, no logit_bias, ≤ 4 stops, ≤ 5 top logprobs.
  if ((body.n ?? 1) > 1) throw unsupported(engine, "n", "greater than 1");
  if (set(body.top_k)) throw unsupported(engine, "top_k", "on chat completions");
  if (set(body.repetition_penalty)) throw unsupported(engine, "repetition_penalty", "on chat completions");
  for (const k of VLLM_ONLY_CHAT) if (set((body as Record<string, unknown>)[k])) throw unsupported(engine, k, "");
  tgiStructured(engine, body);
  if (stopCount(body.stop) > TGI_MAX_STOP) throw unsupported(engine, "stop", `with more than ${TGI_MAX_STOP} sequences`);
  if ((body.top_logprobs ?? 0) > TGI_MAX_TOP_N) throw unsupported(engine, "top_logprobs", `greater than ${TGI_MAX_TOP_N}`);
  if (body.seed != null && body.seed < 0) throw unsupported(engine, "seed", "below 0");
}

export function checkCompletion(engine: EngineKind, body: CompletionRequest): void {
  common(body);
  if (engine !== "tgi") return;
  // TGI's /generate_stream: one sequence, no per-token logprobs in OpenAI's shape, no presence penalty.
  if ((body.n ?? 1) > 1) throw unsupported(engine, "n", "greater than 1");
  if ((body.best_of ?? 1) > 1) throw unsupported(engine, "best_of", "greater than 1");
  if (set(body.logprobs)) throw unsupported(engine, "logprobs", "on completions");
  if (body.presence_penalty != null && body.presence_penalty !== 0) throw unsupported(engine, "presence_penalty", "");
  if (set(body.suffix)) throw unsupported(engine, "suffix", "");
  if (set(body.response_format)) throw unsupported(engine, "response_format", "on completions");
  tgiStructured(engine, body);
  if (body.prompt === null || (typeof body.prompt !== "string" && typeof body.prompt[0] !== "string")) throw unsupported(engine, "prompt", "as token ids");
  if (Array.isArray(body.prompt) && body.prompt.length > 1) throw unsupported(engine, "prompt", "as several prompts");
  if (stopCount(body.stop) > TGI_MAX_STOP) throw unsupported(engine, "stop", `with more than ${TGI_MAX_STOP} sequences`);
  if (body.seed != null && body.seed < 0) throw unsupported(engine, "seed", "below 0");
}

export function checkEmbedding(engine: EngineKind, body: EmbeddingRequest): void {
  if (engine === "tei" && set(body.add_special_tokens)) throw unsupported(engine, "add_special_tokens", "");
}

/** vLLM serves rerank and score for pooling models; TEI reranks (and scores one text against many). */
export function checkScoring(engine: EngineKind, endpoint: "rerank" | "score", body: ScoreRequest | RerankRequest): void {
  if (engine !== "vllm" && engine !== "tei") throw unsupported(engine, endpoint, "");
  if (engine === "tei" && endpoint === "score") {
    const t1 = (body as ScoreRequest).text_1;
    if (Array.isArray(t1) && t1.length > 1) throw unsupported(engine, "text_1", "as several texts (send one, scored against each of text_2)");
  }
  if (endpoint === "score") {
    const { text_1: a, text_2: b } = body as ScoreRequest;
    const n1 = typeof a === "string" ? 1 : a.length;
    const n2 = typeof b === "string" ? 1 : b.length;
    if (n1 !== 1 && n1 !== n2) throw new PlatformError("invalid_request", "'text_1' must be one text, or as many texts as 'text_2'.", { param: "text_1" });
  }
}

/** Tokenize: vLLM, and TGI for a prompt; detokenize: vLLM. */
export function checkTokenize(engine: EngineKind, endpoint: "tokenize" | "detokenize", body: TokenizeRequest | DetokenizeRequest): void {
  if (endpoint === "tokenize") {
    const t = body as TokenizeRequest;
    if ((t.prompt === undefined) === (t.messages === undefined)) {
      throw new PlatformError("invalid_request", "Send either 'prompt' or 'messages'.", { param: t.prompt === undefined ? "prompt" : "messages" });
    }
    if (engine === "tgi" && t.messages !== undefined) throw unsupported(engine, "messages", "on tokenize (send a prompt)");
    if (engine !== "vllm" && engine !== "tgi") throw unsupported(engine, endpoint, "");
  } else if (engine !== "vllm") throw unsupported(engine, endpoint, "");
}
