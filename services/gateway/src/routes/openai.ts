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
import { listVisibleModels } from "@infera/registry";
import { requireScope, type Principal } from "../auth.ts";
import { runInference, type EndpointKind, type InferenceDeps } from "../inference.ts";
import { attributesOf, chatInput, completionInput, embeddingInput, resolveModelFor, usableModelFor, wholeInput } from "../inference-input.ts";
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
import { checkScoring, checkTokenize } from "../capabilities.ts";
import type { GatewayContext } from "../context.ts";
import { registerResponsesRoutes } from "./responses.ts";
import { registerBatchRoutes } from "./batches.ts";
import { registerFilesRoutes } from "./files.ts";

const DEFAULT_IMAGE_MODEL = "black-forest-labs/FLUX-1-schnell";
const IMAGE_SIZES = new Set(["256x256", "512x512", "768x768", "1024x1024", "1024x768", "768x1024", "1792x1024", "1024x1792", "1536x1024", "1024x1536"]);

const ModelParams = Type.Object({ model: Type.String({ description: "A model id; it may hold slashes (`meta-llama/Meta-Llama-3-8B-Instruct`)." }) });

export function registerOpenAIRoutes(app: FastifyInstance, ctx: GatewayContext, deps: InferenceDeps): void {
  const principalOf = (req: FastifyRequest): Principal => (req as FastifyRequest & { principal: Principal }).principal;

  const resolveFor = (req: FastifyRequest, model: string, endpoint: EndpointKind) => resolveModelFor(ctx, principalOf(req), model, endpoint);
  /** The model this key may call on this endpoint (whether it serves now or not: batch lines run later). */
  const usableModel = (req: FastifyRequest, model: string, endpoint: EndpointKind) => usableModelFor(ctx, principalOf(req), model, endpoint);

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
    await start(req, reply, await chatInput(ctx, principalOf(req), body), res);
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
      registerBatchRoutes(scope, { ctx, jobs: ctx.jobs, logger: deps.logger, principalOf });

      scope.post("/completions", { schema: { body: CompletionRequest } }, async (req, reply) =>
        start(req, reply, await completionInput(ctx, principalOf(req), req.body as CompletionRequest)),
      );

      scope.post("/embeddings", { schema: { body: EmbeddingRequest } }, async (req, reply) =>
        start(req, reply, await embeddingInput(ctx, principalOf(req), req.body as EmbeddingRequest)),
      );

      // vLLM's serving API beside OpenAI's: through the queue to an agent like the rest, admitted, metered.
      scope.post("/rerank", { schema: { body: RerankRequest } }, async (req, reply) => {
        const body = req.body as RerankRequest;
        const m = await resolveFor(req, body.model, "rerank");
        checkScoring(m.engine, "rerank", body);
        const counter = ctx.tokenizers.counter(m.tokenizer);
        const q = counter.count(body.query) + 2;
        let tokens = 0;
        for (const d of body.documents) tokens += q + counter.count(typeof d === "string" ? d : d.text);
        await start(req, reply, wholeInput(m, "rerank", { ...body, model: m.modelName }, tokens, body));
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
        await start(req, reply, wholeInput(m, "score", { ...body, model: m.modelName }, tokens, body));
      });

      scope.post("/tokenize", { schema: { body: TokenizeRequest } }, async (req, reply) => {
        const body = req.body as TokenizeRequest;
        const m = await resolveFor(req, body.model, "tokenize");
        checkTokenize(m.engine, "tokenize", body);
        await start(req, reply, wholeInput(m, "tokenize", { ...body, model: m.modelName }, 0, {}));
      });

      scope.post("/detokenize", { schema: { body: DetokenizeRequest } }, async (req, reply) => {
        const body = req.body as DetokenizeRequest;
        const m = await resolveFor(req, body.model, "detokenize");
        checkTokenize(m.engine, "detokenize", body);
        await start(req, reply, wholeInput(m, "detokenize", { ...body, model: m.modelName }, 0, {}));
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
