/**
 * The tenant API: OpenAI-compatible chat, completions, embeddings, images and models,
 * mounted under /v1/openai and /v1. Handlers validate (schema), resolve the model,
 * then hand the request to the inference pipeline.
 */
import Type from "typebox";
import type { ServerResponse } from "node:http";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { PlatformError } from "@infera/core";
import type { Task } from "@infera/contracts";
import { listVisibleModels, type ResolvedModel } from "@infera/registry";
import { requireModel, requireScope, type Principal } from "../auth.ts";
import { runInference, type EndpointKind, type InferenceDeps, type RequestAttributes } from "../inference.ts";
import { sendError } from "../responses.ts";
import { errorBody } from "../errors.ts";
import { clientRequestId } from "../request-id.ts";
import {
  ChatCompletionRequest,
  CompletionRequest,
  DetokenizeRequest,
  EmbeddingRequest,
  ImageRequest,
  RerankRequest,
  ScoreRequest,
  TokenizeRequest,
} from "../openai-schema.ts";
import { checkChat, checkCompletion, checkEmbedding, checkScoring, checkTokenize } from "../capabilities.ts";
import { chatEngineBody, completionEngineBody, embeddingEngineBody } from "../engine-body.ts";
import { PER_MESSAGE, type PromptCounter } from "../prompt-tokens.ts";
import { assertServable } from "../resolver.ts";
import type { GatewayContext } from "../context.ts";
import { registerResponsesRoutes } from "./responses.ts";
import { registerFilesRoutes } from "./files.ts";

const DEFAULT_IMAGE_MODEL = "black-forest-labs/FLUX-1-schnell";
const IMAGE_SIZES = new Set(["256x256", "512x512", "768x768", "1024x1024", "1024x768", "768x1024", "1792x1024", "1024x1792", "1536x1024", "1024x1536"]);

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

/** A whole-answer request to a pooling or tokenizer endpoint: tokens it reserves are its prompt tokens (none for tokenize). */
function scoringInput(m: ResolvedModel, endpoint: EndpointKind, engineBody: Record<string, unknown>, tokens: number, body: { user?: string }) {
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

/** What the gateway keeps of a request on its usage record (OpenAI's `user`, `safety_identifier`, `metadata`, `service_tier`). */
function attributesOf(body: {
  user?: string;
  safety_identifier?: string;
  metadata?: Record<string, string> | null;
  service_tier?: string | null;
}): RequestAttributes {
  return { endUser: body.user, safetyIdentifier: body.safety_identifier, metadata: body.metadata ?? undefined, serviceTier: body.service_tier ?? undefined };
}

const ModelParams = Type.Object({ model: Type.String({ description: "A model id; it may hold slashes (`meta-llama/Meta-Llama-3-8B-Instruct`)." }) });

export function registerOpenAIRoutes(app: FastifyInstance, ctx: GatewayContext, deps: InferenceDeps): void {
  const principalOf = (req: FastifyRequest): Principal => (req as FastifyRequest & { principal: Principal }).principal;

  /** The model this key may call on this endpoint (whether it serves now or not: batch lines run later). */
  async function usableModel(req: FastifyRequest, model: string, endpoint: EndpointKind): Promise<ResolvedModel> {
    const p = principalOf(req);
    const m = await ctx.resolver.resolve(p.tenantId, model);
    requireModel(p, model, m.modelName);
    if (!TASKS_OF[endpoint].includes(m.task)) {
      throw new PlatformError("invalid_request", `The model '${model}' does not support ${ENDPOINT_NAME[endpoint]}.`, { param: "model" });
    }
    return m;
  }

  async function resolveFor(req: FastifyRequest, model: string, endpoint: EndpointKind): Promise<ResolvedModel> {
    const m = await usableModel(req, model, endpoint);
    assertServable(m, model);
    return m;
  }

  async function start(
    req: FastifyRequest,
    reply: FastifyReply,
    input: Omit<Parameters<typeof runInference>[2], "principal" | "startedAt" | "requestId" | "clientRequestId" | "traceparent" | "route">,
    res: ServerResponse = reply.raw,
  ) {
    // Fastify's request id is the platform's own (app.ts: genReqId); the client's is a correlation field.
    const requestId = req.id;
    (req as FastifyRequest & { inPipeline?: boolean }).inPipeline = true;
    reply.hijack();
    try {
      await runInference(deps, res, {
        ...input,
        requestId,
        clientRequestId: clientRequestId(req),
        traceparent: typeof req.headers.traceparent === "string" ? req.headers.traceparent : undefined,
        principal: principalOf(req),
        route: req.routeOptions.url ?? "",
        startedAt: (req as FastifyRequest & { startedAt: number }).startedAt,
      });
    } catch (err) {
      // The reply is the pipeline's from here: whatever escapes it still gets an answer.
      deps.logger.error({ err, requestId }, "inference pipeline failed");
      const e = new PlatformError("internal", "The server had an error while processing your request.", { cause: err });
      if (!res.headersSent) sendError(res, e, { "x-request-id": requestId }, deps.metrics);
      else if (!res.writableEnded) res.end(`data: ${JSON.stringify(errorBody(e))}\n\n`);
    }
  }

  /** A chat completion, answered on `res` (the Responses API passes its translating writer). */
  async function chat(req: FastifyRequest, reply: FastifyReply, body: ChatCompletionRequest, res: ServerResponse = reply.raw) {
    const m = await resolveFor(req, body.model, "chat");
    checkChat(m.engine, body, { name: body.model, modalities: m.modalities });
    const stream = body.stream === true;
    const prompt = chatPrompt(body, ctx.tokenizers.counter(m.tokenizer));
    const maxOut = body.max_completion_tokens ?? body.max_tokens ?? 256;
    await start(
      req,
      reply,
      {
        model: m,
        endpoint: "chat",
        engineBody: chatEngineBody(body, m.modelName, m.engine),
        stream,
        includeUsage: body.stream_options?.include_usage === true,
        promptText: prompt.text,
        cacheKey: body.prompt_cache_key,
        promptTokens: prompt.tokens,
        estimatedTokens: prompt.tokens + maxOut * (body.n ?? 1),
        serviceTier: body.service_tier,
        attributes: attributesOf(body),
      },
      res,
    );
  }

  app.register(
    async (scope) => {
      // A request refused before the pipeline (key, body, model) gets its access line here; the pipeline writes its own.
      // Callback-style: a pipeline request (nearly all) passes with no promise made for it.
      scope.addHook("onResponse", (req, reply, done) => {
        const r = req as FastifyRequest & { inPipeline?: boolean; startedAt: number; principal?: Principal; errorCode?: string };
        if (r.inPipeline) return done();
        const route = req.routeOptions.url ?? "";
        const errorCode = r.errorCode ?? (reply.statusCode >= 400 ? "error" : undefined);
        // Traced too (tracing on): a span of its own, continuing the client's traceparent.
        const span = deps.tracing?.enabled
          ? deps.tracing.start(`${req.method} ${route}`, {
              parent: typeof req.headers.traceparent === "string" ? req.headers.traceparent : undefined,
              kind: "server",
              startTime: r.startedAt,
              attributes: {
                "http.request.method": req.method,
                "http.route": route,
                "http.response.status_code": reply.statusCode,
                "infera.request.id": req.id,
              },
            })
          : undefined;
        if (span && errorCode) span.fail(errorCode);
        span?.end();
        deps.accessLog?.write({
          requestId: req.id,
          clientRequestId: clientRequestId(req),
          traceId: span?.traceId,
          tenantId: r.principal?.tenantId,
          keyId: r.principal?.keyId,
          tier: r.principal?.tier,
          route,
          status: reply.statusCode,
          totalMs: performance.now() - r.startedAt,
          errorCode,
        });
        done();
      });
      scope.addHook("onRequest", async (req) => {
        (req as FastifyRequest & { startedAt: number }).startedAt = performance.now();
        const p = await ctx.keys.authenticate(req.headers.authorization);
        requireScope(p, "inference");
        (req as FastifyRequest & { principal: Principal }).principal = p;
      });
      scope.post("/chat/completions", { schema: { body: ChatCompletionRequest } }, async (req, reply) => chat(req, reply, req.body as ChatCompletionRequest));
      registerResponsesRoutes(scope, { db: ctx.db, retentionDays: ctx.responsesRetentionDays ?? 30, logger: deps.logger, principalOf, chat });
      await registerFilesRoutes(scope, { db: ctx.db, blobs: ctx.blobs, limits: ctx.files, logger: deps.logger, principalOf, checkModel: usableModel });

      scope.post("/completions", { schema: { body: CompletionRequest } }, async (req, reply) => {
        const body = req.body as CompletionRequest;
        const m = await resolveFor(req, body.model, "completion");
        checkCompletion(m.engine, body);
        const stream = body.stream === true;
        const counter = ctx.tokenizers.counter(m.tokenizer);
        const p = body.prompt;
        let promptText = "";
        let promptTokens = 1;
        if (typeof p === "string") {
          promptText = p;
          promptTokens += counter.count(p);
        } else if (Array.isArray(p) && p.length > 0) {
          if (typeof p[0] === "string") {
            promptText = p[0];
            for (const x of p as string[]) promptTokens += counter.count(x) + 1;
          } else if (typeof p[0] === "number") promptTokens = p.length;
          else promptTokens = (p as number[][]).reduce((n, ids) => n + ids.length, 0);
        }
        const prompts = Array.isArray(p) && typeof p[0] !== "number" ? p.length : 1;
        await start(req, reply, {
          model: m,
          endpoint: "completion",
          engineBody: completionEngineBody(body, m.modelName, m.engine),
          stream,
          includeUsage: body.stream_options?.include_usage === true,
          promptText,
          promptTokens,
          estimatedTokens: promptTokens + (body.max_tokens ?? 16) * Math.max(body.n ?? 1, body.best_of ?? 1) * prompts,
          serviceTier: body.service_tier,
          attributes: attributesOf(body),
        });
      });

      scope.post("/embeddings", { schema: { body: EmbeddingRequest } }, async (req, reply) => {
        const body = req.body as EmbeddingRequest;
        const m = await resolveFor(req, body.model, "embedding");
        checkEmbedding(m.engine, body);
        const counter = ctx.tokenizers.counter(m.tokenizer);
        const inputs = typeof body.input === "string" ? [body.input] : (body.input as unknown[]);
        let tokens = 0;
        for (const x of inputs) tokens += typeof x === "string" ? counter.count(x) + 2 : Array.isArray(x) ? x.length : 1;
        await start(req, reply, {
          model: m,
          endpoint: "embedding",
          engineBody: embeddingEngineBody(body, m.modelName),
          stream: false,
          includeUsage: false,
          promptText: "",
          promptTokens: tokens,
          estimatedTokens: tokens,
          attributes: attributesOf(body),
        });
      });

      // vLLM's serving API beside OpenAI's: through the queue to an agent like the rest, admitted, metered.
      scope.post("/rerank", { schema: { body: RerankRequest } }, async (req, reply) => {
        const body = req.body as RerankRequest;
        const m = await resolveFor(req, body.model, "rerank");
        checkScoring(m.engine, "rerank", body);
        const counter = ctx.tokenizers.counter(m.tokenizer);
        const q = counter.count(body.query) + 2;
        let tokens = 0;
        for (const d of body.documents) tokens += q + counter.count(typeof d === "string" ? d : d.text);
        await start(req, reply, scoringInput(m, "rerank", { ...body, model: m.modelName }, tokens, body));
      });

      scope.post("/score", { schema: { body: ScoreRequest } }, async (req, reply) => {
        const body = req.body as ScoreRequest;
        const m = await resolveFor(req, body.model, "score");
        checkScoring(m.engine, "score", body);
        const counter = ctx.tokenizers.counter(m.tokenizer);
        const a = typeof body.text_1 === "string" ? [body.text_1] : body.text_1;
        const b = typeof body.text_2 === "string" ? [body.text_2] : body.text_2;
        let tokens = 0;
        for (const [i, t2] of b.entries()) tokens += counter.count(a.length === 1 ? a[0]! : (a[i] ?? "")) + counter.count(t2) + 2;
        await start(req, reply, scoringInput(m, "score", { ...body, model: m.modelName }, tokens, body));
      });

      scope.post("/tokenize", { schema: { body: TokenizeRequest } }, async (req, reply) => {
        const body = req.body as TokenizeRequest;
        const m = await resolveFor(req, body.model, "tokenize");
        checkTokenize(m.engine, "tokenize", body);
        await start(req, reply, scoringInput(m, "tokenize", { ...body, model: m.modelName }, 0, {}));
      });

      scope.post("/detokenize", { schema: { body: DetokenizeRequest } }, async (req, reply) => {
        const body = req.body as DetokenizeRequest;
        const m = await resolveFor(req, body.model, "detokenize");
        checkTokenize(m.engine, "detokenize", body);
        await start(req, reply, scoringInput(m, "detokenize", { ...body, model: m.modelName }, 0, {}));
      });

      scope.post("/images/generations", { schema: { body: ImageRequest } }, async (req, reply) => {
        const body = req.body as ImageRequest;
        if (body.response_format === "url") {
          throw new PlatformError("invalid_request", "response_format 'url' is not supported; use 'b64_json'.", { param: "response_format" });
        }
        const size = body.size ?? "1024x1024";
        if (!IMAGE_SIZES.has(size)) {
          throw new PlatformError("invalid_request", `Invalid value for 'size': '${size}'. Supported sizes are ${[...IMAGE_SIZES].join(", ")}.`, {
            param: "size",
          });
        }
        const model = body.model ?? DEFAULT_IMAGE_MODEL;
        const m = await resolveFor(req, model, "image");
        await start(req, reply, {
          model: m,
          endpoint: "image",
          engineBody: {
            prompt: body.prompt,
            n: body.n ?? 1,
            size,
            response_format: "b64_json",
            model: m.modelName,
            ...(body.seed != null ? { seed: body.seed } : {}),
          },
          stream: false,
          includeUsage: false,
          promptText: "",
          promptTokens: 0,
          estimatedTokens: 1000 * (body.n ?? 1),
          attributes: attributesOf(body),
        });
      });

      // A key with an allow-list sees only those models.
      const visible = async (req: FastifyRequest) => {
        const p = principalOf(req);
        const rows = await listVisibleModels(ctx.db, p.tenantId);
        return p.models ? rows.filter((m) => p.models!.includes(m.name)) : rows;
      };
      scope.get("/models", async (req) => ({ object: "list", data: (await visible(req)).map((m) => modelObject(m)) }));

      // Model ids hold slashes: a wildcard here, one path parameter in the document.
      scope.get("/models/*", { config: { openapi: { path: `${ctx.prefix}/models/{model}`, params: ModelParams } } }, async (req) => {
        const id = (req.params as { "*": string })["*"];
        const m = (await visible(req)).find((x) => x.name === id);
        if (!m) throw new PlatformError("not_found", `The model '${id}' does not exist or you do not have access to it.`, { param: "model" });
        return modelObject(m);
      });
    },
    { prefix: ctx.prefix },
  );
}

/** OpenAI's Model object, plus what the model takes as input (`input_modalities`) and answers with (`output_modalities`). */
function modelObject(m: { name: string; created_at: Date; tenant_id: string | null; task: Task; modalities: readonly string[] }) {
  return {
    id: m.name,
    object: "model",
    created: Math.floor(m.created_at.getTime() / 1000),
    owned_by: m.tenant_id ? "tenant" : (m.name.split("/")[0] ?? "infera"),
    input_modalities: m.modalities,
    output_modalities: [OUTPUT_MODALITY[m.task]],
  };
}

const OUTPUT_MODALITY: Record<Task, string> = { chat: "text", embeddings: "embedding", images: "image" };
