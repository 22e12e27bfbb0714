/**
 * Parsing and validating OpenAI-API generation requests (chat and completions) the way vLLM
 * does: the served model name is checked, sampling parameters range-checked, and the prompt
 * tokenized (chat: Llama 3's chat template; completions: the raw prompt with BOS) and checked
 * against the context length.
 */
import type { SimConfig } from "./config.ts";
import { SimError } from "./errors.ts";
import { isRecord } from "./http.ts";
import { applyChatTemplate, decode, encode, type ChatTemplateMessage } from "./tokenizer.ts";
import { type Body, optBool, optInt, optNumber, optRecord, optString, stopList } from "./validate.ts";

export interface SamplingRequest {
  /** The model name echoed in responses. */
  model: string;
  n: number;
  /** Requested max tokens, or undefined for "the rest of the context" (vLLM's default). */
  maxTokens: number | undefined;
  minTokens: number;
  stop: string[];
  seed: number;
  greedy: boolean;
  ignoreEos: boolean;
  stream: boolean;
  includeUsage: boolean;
  /** vLLM's `stream_options.continuous_usage_stats` (with include_usage): every chunk carries the cumulative usage. */
  continuousUsage: boolean;
}

export interface ToolDef {
  name: string;
  parameters: unknown;
}

export type ResponseFormat = { type: "text" } | { type: "json_object" } | { type: "json_schema"; schema: unknown };

export interface ChatRequest extends SamplingRequest {
  messages: ChatTemplateMessage[];
  promptText: string;
  promptIds: readonly number[];
  logprobs: boolean;
  topLogprobs: number;
  responseFormat: ResponseFormat;
  tools: ToolDef[];
  toolChoice: "none" | "auto" | "required" | { name: string };
}

export interface CompletionPrompt {
  text: string;
  ids: readonly number[];
}

export interface CompletionRequest extends SamplingRequest {
  prompts: CompletionPrompt[];
  echo: boolean;
  /** Number of top logprobs per token, or null when not asked for. */
  logprobs: number | null;
}

const MAX_LOGPROBS = 20;

/**
 * The model name to echo; 404 like vLLM when it is not one of the served names. TGI's
 * Messages API ignores the field (clients send "tgi"), so TGI mode accepts any name.
 */
export function checkModel(config: SimConfig, body: Body): string {
  const model = optString(body, "model");
  const primary = config.models[0] ?? "";
  if (model === undefined) return primary;
  if (config.mode === "tgi") return model;
  if (!config.models.includes(model)) throw new SimError("not_found", `The model \`${model}\` does not exist.`, "model");
  return model;
}

export function contextLengthError(maxModelLen: number, promptTokens: number, maxTokens?: number): SimError {
  if (maxTokens === undefined || promptTokens >= maxModelLen) {
    return new SimError(
      "context_length",
      `This model's maximum context length is ${maxModelLen} tokens. However, your request has ${promptTokens} input tokens. Please reduce the length of the input messages.`,
      "messages",
    );
  }
  return new SimError(
    "context_length",
    `'max_tokens' or 'max_completion_tokens' is too large: ${maxTokens}. This model's maximum context length is ${maxModelLen} tokens and your request has ${promptTokens} input tokens (${maxTokens} > ${maxModelLen} - ${promptTokens}).`,
    "max_tokens",
  );
}

/** The number of tokens to generate at most: the request's, or the rest of the context. */
export function resolveMaxTokens(maxModelLen: number, promptTokens: number, requested: number | undefined): number {
  if (promptTokens >= maxModelLen) throw contextLengthError(maxModelLen, promptTokens);
  if (requested !== undefined && promptTokens + requested > maxModelLen) throw contextLengthError(maxModelLen, promptTokens, requested);
  return requested ?? maxModelLen - promptTokens;
}

function parseSampling(config: SimConfig, body: Body, maxTokensNames: readonly string[]): SamplingRequest {
  const model = checkModel(config, body);
  const n = optInt(body, "n", 1, 128) ?? 1;
  let maxTokens: number | undefined;
  for (const name of maxTokensNames) maxTokens ??= optInt(body, name, 1);
  const minTokens = optInt(body, "min_tokens", 0) ?? 0;
  if (maxTokens !== undefined && minTokens > maxTokens) {
    throw new SimError("invalid_request", `min_tokens must be less than or equal to max_tokens=${maxTokens}, got ${minTokens}.`, "min_tokens");
  }
  const temperature = optNumber(body, "temperature", 0) ?? 1;
  const topP = optNumber(body, "top_p");
  if (topP !== undefined && (topP <= 0 || topP > 1)) throw new SimError("invalid_request", `top_p must be in (0, 1], got ${topP}.`, "top_p");
  const topK = optInt(body, "top_k");
  if (topK !== undefined && topK < -1) throw new SimError("invalid_request", `top_k must be -1 (disable), or at least 1, got ${topK}.`, "top_k");
  optNumber(body, "min_p", 0, 1);
  const rep = optNumber(body, "repetition_penalty");
  if (rep !== undefined && rep <= 0) throw new SimError("invalid_request", `repetition_penalty must be greater than zero, got ${rep}.`, "repetition_penalty");
  optNumber(body, "presence_penalty", -2, 2);
  optNumber(body, "frequency_penalty", -2, 2);
  const seed = optInt(body, "seed", -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  const stream = optBool(body, "stream") ?? false;
  const streamOptions = optRecord(body, "stream_options");
  if (streamOptions !== undefined && !stream) {
    throw new SimError("invalid_request", "Stream options can only be defined when `stream=True`.", "stream_options");
  }
  const includeUsage = streamOptions !== undefined && streamOptions.include_usage === true;
  const continuousUsage = includeUsage && streamOptions?.continuous_usage_stats === true;
  const greedy = temperature === 0;
  return {
    model,
    n,
    maxTokens,
    minTokens,
    stop: stopList(body),
    // Greedy decoding ignores the seed; an unseeded request behaves like seed 0 (deterministic).
    seed: greedy ? 0 : (seed ?? 0),
    greedy,
    ignoreEos: optBool(body, "ignore_eos") ?? false,
    stream,
    includeUsage,
    continuousUsage,
  };
}

function messageText(content: unknown, index: number): string {
  if (content === undefined || content === null) return "";
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    const texts: string[] = [];
    for (const part of content) {
      if (isRecord(part) && part.type === "text" && typeof part.text === "string") texts.push(part.text);
    }
    return texts.join("\n");
  }
  throw new SimError("invalid_request", `messages[${index}].content: Input should be a valid string or a list of content parts`, "messages");
}

function parseMessages(body: Body): ChatTemplateMessage[] {
  const raw = body.messages;
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new SimError("invalid_request", "messages: Field required (a non-empty list of messages)", "messages");
  }
  return raw.map((m, i) => {
    if (!isRecord(m) || typeof m.role !== "string") throw new SimError("invalid_request", `messages[${i}]: a message needs a string role`, "messages");
    let content = messageText(m.content, i);
    if (Array.isArray(m.tool_calls) && m.tool_calls.length > 0) content += JSON.stringify(m.tool_calls);
    return { role: m.role === "tool" ? "ipython" : m.role, content };
  });
}

function parseTools(body: Body): { tools: ToolDef[]; toolChoice: ChatRequest["toolChoice"] } {
  const raw = body.tools;
  const tools: ToolDef[] = [];
  if (raw !== undefined && raw !== null) {
    if (!Array.isArray(raw)) throw new SimError("invalid_request", "tools: Input should be a valid list", "tools");
    raw.forEach((t, i) => {
      const fn = isRecord(t) ? t.function : undefined;
      if (!isRecord(t) || t.type !== "function" || !isRecord(fn) || typeof fn.name !== "string") {
        throw new SimError("invalid_request", `tools[${i}]: expected {type: "function", function: {name, parameters}}`, "tools");
      }
      tools.push({ name: fn.name, parameters: fn.parameters });
    });
  }
  const choice = body.tool_choice;
  if (choice === undefined || choice === null) return { tools, toolChoice: tools.length > 0 ? "auto" : "none" };
  if (tools.length === 0 && choice !== "none") {
    throw new SimError("invalid_request", "When using `tool_choice`, `tools` must be set.", "tool_choice");
  }
  if (choice === "none" || choice === "auto" || choice === "required") return { tools, toolChoice: choice };
  if (isRecord(choice) && choice.type === "function" && isRecord(choice.function) && typeof choice.function.name === "string") {
    const name = choice.function.name;
    if (!tools.some((t) => t.name === name)) {
      throw new SimError("invalid_request", `Tool '${name}' has not been passed in \`tools\`.`, "tool_choice");
    }
    return { tools, toolChoice: { name } };
  }
  throw new SimError("invalid_request", 'tool_choice: expected "none", "auto", "required" or {type: "function", function: {name}}', "tool_choice");
}

function parseResponseFormat(body: Body): ResponseFormat {
  const guided = body.guided_json;
  if (guided !== undefined && guided !== null) {
    if (typeof guided !== "string") return { type: "json_schema", schema: guided };
    try {
      return { type: "json_schema", schema: JSON.parse(guided) as unknown };
    } catch {
      throw new SimError("invalid_request", "guided_json: not a valid JSON schema", "guided_json");
    }
  }
  const rf = optRecord(body, "response_format");
  if (rf === undefined || rf.type === "text") return { type: "text" };
  if (rf.type === "json_object") return { type: "json_object" };
  if (rf.type === "json_schema") {
    const js = rf.json_schema;
    if (!isRecord(js)) throw new SimError("invalid_request", "response_format.json_schema: Field required", "response_format");
    return { type: "json_schema", schema: js.schema ?? {} };
  }
  throw new SimError(
    "invalid_request",
    `response_format.type must be one of text, json_object, json_schema, got ${JSON.stringify(rf.type)}`,
    "response_format",
  );
}

export function parseChatRequest(config: SimConfig, body: Body): ChatRequest {
  const sampling = parseSampling(config, body, ["max_completion_tokens", "max_tokens"]);
  const messages = parseMessages(body);
  const logprobs = optBool(body, "logprobs") ?? false;
  const topLogprobs = optInt(body, "top_logprobs", 0, MAX_LOGPROBS) ?? 0;
  if (topLogprobs > 0 && !logprobs) {
    throw new SimError("invalid_request", "when using `top_logprobs`, `logprobs` must be set to true.", "top_logprobs");
  }
  const { tools, toolChoice } = parseTools(body);
  const responseFormat = parseResponseFormat(body);
  const promptText = applyChatTemplate(messages);
  const promptIds = encode(promptText);
  return { ...sampling, messages, promptText, promptIds, logprobs, topLogprobs, responseFormat, tools, toolChoice };
}

function parsePrompts(body: Body): CompletionPrompt[] {
  const p = body.prompt;
  const isIds = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((x) => Number.isInteger(x) && (x as number) >= 0);
  if (typeof p === "string") return [{ text: p, ids: encode(p, { bos: true }) }];
  if (isIds(p)) return [{ text: decode(p), ids: p }];
  if (Array.isArray(p) && p.length > 0) {
    if (p.every((x): x is string => typeof x === "string")) return p.map((text) => ({ text, ids: encode(text, { bos: true }) }));
    if (p.every(isIds)) return p.map((ids) => ({ text: decode(ids), ids }));
  }
  throw new SimError("invalid_request", "prompt: Input should be a string, a list of strings, a list of token ids, or a list of lists of token ids", "prompt");
}

export function parseCompletionRequest(config: SimConfig, body: Body): CompletionRequest {
  const sampling = parseSampling(config, body, ["max_tokens"]);
  if (body.suffix !== undefined && body.suffix !== null) {
    throw new SimError("invalid_request", "suffix is not currently supported", "suffix");
  }
  const prompts = parsePrompts(body);
  const logprobs = optInt(body, "logprobs", 0, MAX_LOGPROBS) ?? null;
  // OpenAI's and vLLM's completions default: 16 tokens.
  return { ...sampling, maxTokens: sampling.maxTokens ?? 16, prompts, echo: optBool(body, "echo") ?? false, logprobs };
}
