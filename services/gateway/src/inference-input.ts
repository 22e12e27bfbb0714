/**
 * A tenant request's way into the inference pipeline, per endpoint: the model resolved for the
 * principal (visible, allowed by its key, of the right task, servable), the capability checks,
 * the engine's body, and the prompt counted. The HTTP routes and the batch runner (one line of a
 * batch is one such request) share it, so a line is validated and resolved exactly as a request.
 */
import { PlatformError } from "@infera/core";
import type { Task } from "@infera/contracts";
import type { ResolvedModel } from "@infera/registry";
import { requireModel, type Principal } from "./auth.ts";
import { checkChat, checkCompletion, checkEmbedding } from "./capabilities.ts";
import type { GatewayContext } from "./context.ts";
import { chatEngineBody, completionEngineBody, embeddingEngineBody } from "./engine-body.ts";
import type { EndpointKind, InferenceRequest, RequestAttributes } from "./inference.ts";
import type { ChatCompletionRequest, CompletionRequest, EmbeddingRequest } from "./openai-schema.ts";
import { PER_MESSAGE, type PromptCounter } from "./prompt-tokens.ts";
import { assertServable } from "./resolver.ts";

/** What a route hands the pipeline; the request's identity (id, principal, route, timing) is added by whoever starts it. */
export type PreparedInput = Omit<InferenceRequest, "principal" | "startedAt" | "requestId" | "clientRequestId" | "traceparent" | "route">;

type InputContext = Pick<GatewayContext, "resolver" | "tokenizers">;

/** The model tasks each endpoint serves (rerank and score: pooling models; tokenize: any text model). */
const TASKS_OF: Record<EndpointKind, readonly Task[]> = {
  chat: ["chat"],
  completion: ["chat"],
  embedding: ["embeddings"],
  image: ["images"],
  rerank: ["embeddings"],
  score: ["embeddings"],
  tokenize: ["chat", "embeddings"],
  detokenize: ["chat", "embeddings"],
};
const ENDPOINT_NAME: Record<EndpointKind, string> = {
  chat: "chat completions",
  completion: "completions",
  embedding: "embeddings",
  image: "image generation",
  rerank: "rerank",
  score: "score",
  tokenize: "tokenize",
  detokenize: "detokenize",
};

/** Tokens a non-text content part is reserved as (vLLM counts an image as its placeholder tokens: 576 for LLaVA-1.5, up to a few thousand for Qwen2-VL). */
const MEDIA_PART_TOKENS = 2048;
/** Characters of the templated prompt hashed for prefix-affine placement (64 blocks of 512). */
const PREFIX_CHARS = 32_768;

/** The prompt's text for placement and its token count for reservations and the fair queue. */
function chatPrompt(body: ChatCompletionRequest, counter: PromptCounter): { text: string; tokens: number } {
  let text = "";
  let tokens = PER_MESSAGE;
  for (const msg of body.messages) {
    tokens += PER_MESSAGE;
    const c = msg.content;
    if (typeof c === "string") {
      tokens += counter.count(c);
      if (text.length < PREFIX_CHARS) text += `${msg.role}:${c}\n`;
    } else if (Array.isArray(c)) {
      if (text.length < PREFIX_CHARS) text += `${msg.role}:`;
      for (const part of c) {
        if (part.type === "text") {
          tokens += counter.count(part.text);
          if (text.length < PREFIX_CHARS) text += part.text;
        } else if (part.type === "refusal") tokens += counter.count(part.refusal);
        else if (part.type === "file") tokens += Math.ceil(((part.file.file_data?.length ?? 0) * 3) / 4);
        else tokens += MEDIA_PART_TOKENS;
      }
      if (text.length < PREFIX_CHARS) text += "\n";
    }
    if (msg.role === "assistant" && msg.tool_calls) tokens += counter.count(JSON.stringify(msg.tool_calls));
  }
  if (body.tools) tokens += counter.count(JSON.stringify(body.tools));
  return { text, tokens };
}

/** What the gateway keeps of a request on its usage record (OpenAI's `user`, `safety_identifier`, `metadata`, `service_tier`). */
export function attributesOf(body: {
  user?: string;
  safety_identifier?: string;
  metadata?: Record<string, string> | null;
  service_tier?: string | null;
}): RequestAttributes {
  return { endUser: body.user, safetyIdentifier: body.safety_identifier, metadata: body.metadata ?? undefined, serviceTier: body.service_tier ?? undefined };
}

/** The model this principal may call on this endpoint, whether it serves now or not (a batch file's lines run later): else the 404/400 a request gets. */
export async function usableModelFor(ctx: Pick<GatewayContext, "resolver">, p: Principal, model: string, endpoint: EndpointKind): Promise<ResolvedModel> {
  const m = await ctx.resolver.resolve(p.tenantId, model);
  requireModel(p, model, m.modelName);
  if (!TASKS_OF[endpoint].includes(m.task)) {
    throw new PlatformError("invalid_request", `The model '${model}' does not support ${ENDPOINT_NAME[endpoint]}.`, { param: "model" });
  }
  return m;
}

/** The model `model` names for this principal, for `endpoint`, serving now: else the 404/400/503 a request gets. */
export async function resolveModelFor(ctx: Pick<GatewayContext, "resolver">, p: Principal, model: string, endpoint: EndpointKind): Promise<ResolvedModel> {
  const m = await usableModelFor(ctx, p, model, endpoint);
  assertServable(m, model);
  return m;
}

export async function chatInput(ctx: InputContext, p: Principal, body: ChatCompletionRequest): Promise<PreparedInput> {
  const m = await resolveModelFor(ctx, p, body.model, "chat");
  checkChat(m.engine, body, { name: body.model, modalities: m.modalities });
  const prompt = chatPrompt(body, ctx.tokenizers.counter(m.tokenizer));
  const maxOut = body.max_completion_tokens ?? body.max_tokens ?? 256;
  return {
    model: m,
    endpoint: "chat",
    engineBody: chatEngineBody(body, m.modelName, m.engine),
    stream: body.stream === true,
    includeUsage: body.stream_options?.include_usage === true,
    promptText: prompt.text,
    cacheKey: body.prompt_cache_key,
    promptTokens: prompt.tokens,
    estimatedTokens: prompt.tokens + maxOut * (body.n ?? 1),
    serviceTier: body.service_tier,
    attributes: attributesOf(body),
  };
}

export async function completionInput(ctx: InputContext, p: Principal, body: CompletionRequest): Promise<PreparedInput> {
  const m = await resolveModelFor(ctx, p, body.model, "completion");
  checkCompletion(m.engine, body);
  const counter = ctx.tokenizers.counter(m.tokenizer);
  const pr = body.prompt;
  let promptText = "";
  let promptTokens = 1;
  if (typeof pr === "string") {
    promptText = pr;
    promptTokens += counter.count(pr);
  } else if (Array.isArray(pr) && pr.length > 0) {
    if (typeof pr[0] === "string") {
      promptText = pr[0];
      for (const x of pr as string[]) promptTokens += counter.count(x) + 1;
    } else if (typeof pr[0] === "number") promptTokens = pr.length;
    else promptTokens = (pr as number[][]).reduce((n, ids) => n + ids.length, 0);
  }
  const prompts = Array.isArray(pr) && typeof pr[0] !== "number" ? pr.length : 1;
  return {
    model: m,
    endpoint: "completion",
    engineBody: completionEngineBody(body, m.modelName, m.engine),
    stream: body.stream === true,
    includeUsage: body.stream_options?.include_usage === true,
    promptText,
    promptTokens,
    estimatedTokens: promptTokens + (body.max_tokens ?? 16) * Math.max(body.n ?? 1, body.best_of ?? 1) * prompts,
    serviceTier: body.service_tier,
    attributes: attributesOf(body),
  };
}

export async function embeddingInput(ctx: InputContext, p: Principal, body: EmbeddingRequest): Promise<PreparedInput> {
  const m = await resolveModelFor(ctx, p, body.model, "embedding");
  checkEmbedding(m.engine, body);
  const counter = ctx.tokenizers.counter(m.tokenizer);
  const inputs = typeof body.input === "string" ? [body.input] : (body.input as unknown[]);
  let tokens = 0;
  for (const x of inputs) tokens += typeof x === "string" ? counter.count(x) + 2 : Array.isArray(x) ? x.length : 1;
  return wholeInput(m, "embedding", embeddingEngineBody(body, m.modelName), tokens, body);
}

/** A whole-answer request to a pooling or tokenizer endpoint: tokens it reserves are its prompt tokens (none for tokenize). */
export function wholeInput(
  m: ResolvedModel,
  endpoint: EndpointKind,
  engineBody: Record<string, unknown>,
  tokens: number,
  body: { user?: string },
): PreparedInput {
  if ("user" in engineBody) delete engineBody.user;
  return {
    model: m,
    endpoint,
    engineBody,
    stream: false,
    includeUsage: false,
    promptText: "",
    promptTokens: tokens,
    estimatedTokens: tokens,
    attributes: attributesOf(body),
  };
}
