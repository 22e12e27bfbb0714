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

export type ResponseFormat = { type: "text" } | { type: "json_object" } | { type: "json_schema"; schema: unknown } | { type: "choice"; choices: string[] };

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

/** A placeholder token (one of Llama 3's reserved special tokens) that media parts expand to, as vLLM expands `<image>`. */
const MEDIA_TOKEN = "<|reserved_special_token_1|>";
const PART_MODALITY: Record<string, string> = { image_url: "image", input_audio: "audio", file: "file" };
const DATA_URI = /^data:([\w.+-]+\/[\w.+-]+);base64,([A-Za-z0-9+/]*={0,2})$/;

function badPart(index: number, j: number, message: string): SimError {
  return new SimError("invalid_request", `messages[${index}].content[${j}]: ${message}`, "messages");
}

/** Base64 that decodes (vLLM fails to load media that does not). */
function decodeBase64(data: string, index: number, j: number): Buffer {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(data) || data.length % 4 !== 0) throw badPart(index, j, "the data is not valid base64");
  return Buffer.from(data, "base64");
}

/**
 * One media part, as vLLM takes it for a multimodal model: an image (http(s) URL — not
 * fetched here — or a data URI that decodes) or an audio clip stands for a fixed number of
 * placeholder tokens in the prompt; a file's decoded text is part of the prompt. A model
 * without that modality answers vLLM's 400.
 */
function mediaText(config: SimConfig, part: Record<string, unknown>, index: number, j: number): string {
  const modality = PART_MODALITY[String(part.type)];
  if (modality === undefined) throw badPart(index, j, `unknown content part type ${JSON.stringify(part.type)}`);
  if (!config.modalities.includes(modality)) {
    throw new SimError(
      "invalid_request",
      `${config.models[0] ?? "The model"} does not support ${modality} input (it is not a multimodal model for ${modality}).`,
      "messages",
    );
  }
  if (part.type === "image_url") {
    const url = isRecord(part.image_url) ? part.image_url.url : undefined;
    if (typeof url !== "string") throw badPart(index, j, "image_url.url: Field required");
    if (url.startsWith("data:")) {
      const m = DATA_URI.exec(url);
      if (m === null || !m[1]?.startsWith("image/")) throw badPart(index, j, "image_url.url: a data URI must be data:image/<type>;base64,<data>");
      decodeBase64(m[2] ?? "", index, j);
    } else if (!/^https?:\/\//.test(url)) throw badPart(index, j, "image_url.url: must be an http(s) URL or a data URI");
    return MEDIA_TOKEN.repeat(config.imageTokens);
  }
  if (part.type === "input_audio") {
    const audio = isRecord(part.input_audio) ? part.input_audio : undefined;
    if (typeof audio?.data !== "string" || (audio.format !== "wav" && audio.format !== "mp3"))
      throw badPart(index, j, "input_audio: {data, format: wav|mp3} required");
    decodeBase64(audio.data, index, j);
    return MEDIA_TOKEN.repeat(config.audioTokens);
  }
  const file = isRecord(part.file) ? part.file : undefined;
  const data = typeof file?.file_data === "string" ? file.file_data : undefined;
  if (data === undefined) throw badPart(index, j, "file.file_data: Field required");
  const m = DATA_URI.exec(data);
  return decodeBase64(m === null ? data : (m[2] ?? ""), index, j).toString("utf8");
}

function messageText(config: SimConfig, content: unknown, index: number): string {
  if (content === undefined || content === null) return "";
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    const texts: string[] = [];
    content.forEach((part, j) => {
      if (!isRecord(part)) throw badPart(index, j, "a content part must be an object");
      if (part.type === "text" && typeof part.text === "string") texts.push(part.text);
      else if (part.type === "refusal" && typeof part.refusal === "string") texts.push(part.refusal);
      else texts.push(mediaText(config, part, index, j));
    });
    return texts.join("\n");
  }
  throw new SimError("invalid_request", `messages[${index}].content: Input should be a valid string or a list of content parts`, "messages");
}

function parseMessages(config: SimConfig, body: Body): ChatTemplateMessage[] {
  const raw = body.messages;
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new SimError("invalid_request", "messages: Field required (a non-empty list of messages)", "messages");
  }
  return raw.map((m, i) => {
    if (!isRecord(m) || typeof m.role !== "string") throw new SimError("invalid_request", `messages[${i}]: a message needs a string role`, "messages");
    let content = messageText(config, m.content, i);
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

function parseChoices(v: unknown, param: string): ResponseFormat {
  if (!Array.isArray(v) || v.length === 0 || !v.every((c): c is string => typeof c === "string")) {
    throw new SimError("invalid_request", `${param}: Input should be a non-empty list of strings`, param);
  }
  return { type: "choice", choices: v };
}

/** vLLM's structured outputs: `structured_outputs` (≥ 0.10), the older `guided_*` fields, then OpenAI's response_format. */
function parseResponseFormat(body: Body, mode: SimConfig["mode"]): ResponseFormat {
  const so = optRecord(body, "structured_outputs");
  if (so !== undefined) {
    if (so.choice !== undefined) return parseChoices(so.choice, "structured_outputs.choice");
    if (so.json !== undefined) return { type: "json_schema", schema: typeof so.json === "string" ? JSON.parse(so.json) : so.json };
    if (so.json_object === true) return { type: "json_object" };
  }
  if (body.guided_choice !== undefined && body.guided_choice !== null) return parseChoices(body.guided_choice, "guided_choice");
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
  // TGI's Messages API takes its own grammar here: {"type": "json", "value": schema} or {"type": "regex", "value": …}.
  if (mode === "tgi" && rf.type === "json") return { type: "json_schema", schema: rf.value ?? {} };
  if (mode === "tgi" && rf.type === "regex") return { type: "text" };
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
  const messages = parseMessages(config, body);
  const logprobs = optBool(body, "logprobs") ?? false;
  const topLogprobs = optInt(body, "top_logprobs", 0, MAX_LOGPROBS) ?? 0;
  if (topLogprobs > 0 && !logprobs) {
    throw new SimError("invalid_request", "when using `top_logprobs`, `logprobs` must be set to true.", "top_logprobs");
  }
  const { tools, toolChoice } = parseTools(body);
  const responseFormat = parseResponseFormat(body, config.mode);
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
