/**
 * The tenant API: OpenAI-compatible chat, completions, embeddings, images and models,
 * mounted under /v1/openai and /v1. Handlers validate (schema), resolve the model,
 * then hand the request to the inference pipeline.
 */
import { randomBytes } from "node:crypto";
import Type from "typebox";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { PlatformError } from "@infera/core";
import type { Task } from "@infera/contracts";
import { listVisibleModels, type ResolvedModel } from "@infera/registry";
import { requireScope, type Principal } from "../auth.ts";
import { runInference, type EndpointKind, type InferenceDeps } from "../inference.ts";
import { ChatCompletionRequest, CompletionRequest, EmbeddingRequest, ImageRequest } from "../openai-schema.ts";
import { checkChat, checkCompletion } from "../capabilities.ts";
import { assertServable } from "../resolver.ts";
import type { GatewayContext } from "../context.ts";

const DEFAULT_IMAGE_MODEL = "black-forest-labs/FLUX-1-schnell";
const IMAGE_SIZES = new Set(["256x256", "512x512", "768x768", "1024x1024", "1024x768", "768x1024", "1792x1024", "1024x1792", "1536x1024", "1024x1536"]);

const TASK_OF: Record<EndpointKind, Task> = { chat: "chat", completion: "chat", embedding: "embeddings", image: "images" };
const ENDPOINT_NAME: Record<EndpointKind, string> = { chat: "chat completions", completion: "completions", embedding: "embeddings", image: "image generation" };

export function requestIdOf(req: FastifyRequest): string {
  const h = req.headers["x-request-id"];
  if (typeof h === "string" && /^[\w.:-]{8,128}$/.test(h)) return h;
  return `req_${randomBytes(12).toString("hex")}`;
}

function textOf(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((p) => (p as { text?: string }).text ?? "").join("");
  return "";
}

const ModelParams = Type.Object({ model: Type.String({ description: "A model id; it may hold slashes (`meta-llama/Meta-Llama-3-8B-Instruct`)." }) });

export function registerOpenAIRoutes(app: FastifyInstance, ctx: GatewayContext, deps: InferenceDeps): void {
  const principalOf = (req: FastifyRequest): Principal => (req as FastifyRequest & { principal: Principal }).principal;

  async function resolveFor(req: FastifyRequest, model: string, endpoint: EndpointKind): Promise<ResolvedModel> {
    const m = await ctx.resolver.resolve(principalOf(req).tenantId, model);
    if (m.task !== TASK_OF[endpoint]) {
      throw new PlatformError("invalid_request", `The model '${model}' does not support ${ENDPOINT_NAME[endpoint]}.`, { param: "model" });
    }
    assertServable(m, model);
    return m;
  }

  async function start(
    req: FastifyRequest,
    reply: FastifyReply,
    input: Omit<Parameters<typeof runInference>[2], "principal" | "startedAt" | "requestId" | "route">,
  ) {
    const requestId = requestIdOf(req);
    reply.hijack();
    await runInference(deps, reply.raw, {
      ...input,
      requestId,
      principal: principalOf(req),
      route: req.routeOptions.url ?? "",
      startedAt: (req as FastifyRequest & { startedAt: number }).startedAt,
    });
  }

  app.register(
    async (scope) => {
      scope.addHook("onRequest", async (req) => {
        (req as FastifyRequest & { startedAt: number }).startedAt = performance.now();
        const p = await ctx.keys.authenticate(req.headers.authorization);
        requireScope(p, "inference");
        (req as FastifyRequest & { principal: Principal }).principal = p;
      });

      scope.post("/chat/completions", { schema: { body: ChatCompletionRequest } }, async (req, reply) => {
        const body = req.body as ChatCompletionRequest;
        const m = await resolveFor(req, body.model, "chat");
        checkChat(m.engine, body);
        const stream = body.stream === true;
        const engineBody: Record<string, unknown> = { ...body, model: m.modelName };
        if (stream) engineBody.stream_options = m.engine === "vllm" ? { include_usage: true, continuous_usage_stats: true } : { include_usage: true };
        let promptText = "";
        for (const msg of body.messages) {
          promptText += `${msg.role}:${textOf(msg.content)}\n`;
          if (promptText.length > 8192) break;
        }
        const maxOut = body.max_completion_tokens ?? body.max_tokens ?? 256;
        await start(req, reply, {
          model: m,
          endpoint: "chat",
          engineBody,
          stream,
          includeUsage: body.stream_options?.include_usage === true,
          promptText,
          estimatedTokens: Math.ceil(promptText.length / 4) + maxOut * (body.n ?? 1),
          serviceTier: body.service_tier,
        });
      });

      scope.post("/completions", { schema: { body: CompletionRequest } }, async (req, reply) => {
        const body = req.body as CompletionRequest;
        const m = await resolveFor(req, body.model, "completion");
        checkCompletion(m.engine, body);
        const stream = body.stream === true;
        const engineBody: Record<string, unknown> = { ...body, model: m.modelName };
        if (stream) engineBody.stream_options = m.engine === "vllm" ? { include_usage: true, continuous_usage_stats: true } : { include_usage: true };
        const promptText =
          typeof body.prompt === "string"
            ? body.prompt
            : Array.isArray(body.prompt) && typeof body.prompt[0] === "string"
              ? body.prompt[0]
              : body.prompt.join(" ");
        await start(req, reply, {
          model: m,
          endpoint: "completion",
          engineBody,
          stream,
          includeUsage: body.stream_options?.include_usage === true,
          promptText,
          estimatedTokens: Math.ceil(promptText.length / 4) + (body.max_tokens ?? 16) * (body.n ?? 1),
          serviceTier: body.service_tier,
        });
      });

      scope.post("/embeddings", { schema: { body: EmbeddingRequest } }, async (req, reply) => {
        const body = req.body as EmbeddingRequest;
        const m = await resolveFor(req, body.model, "embedding");
        const inputs = typeof body.input === "string" ? [body.input] : (body.input as unknown[]);
        const chars = inputs.reduce<number>((n, x) => n + (typeof x === "string" ? x.length : Array.isArray(x) ? x.length * 4 : 4), 0);
        await start(req, reply, {
          model: m,
          endpoint: "embedding",
          engineBody: { ...body, model: m.modelName },
          stream: false,
          includeUsage: false,
          promptText: "",
          estimatedTokens: Math.ceil(chars / 4),
        });
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
          estimatedTokens: 1000 * (body.n ?? 1),
        });
      });

      scope.get("/models", async (req) => {
        const rows = await listVisibleModels(ctx.db, principalOf(req).tenantId);
        return { object: "list", data: rows.map((m) => modelObject(m.name, m.created_at, m.tenant_id)) };
      });

      // Model ids hold slashes: a wildcard here, one path parameter in the document.
      scope.get("/models/*", { config: { openapi: { path: `${ctx.prefix}/models/{model}`, params: ModelParams } } }, async (req) => {
        const id = (req.params as { "*": string })["*"];
        const rows = await listVisibleModels(ctx.db, principalOf(req).tenantId);
        const m = rows.find((x) => x.name === id);
        if (!m) throw new PlatformError("not_found", `The model '${id}' does not exist or you do not have access to it.`, { param: "model" });
        return modelObject(m.name, m.created_at, m.tenant_id);
      });
    },
    { prefix: ctx.prefix },
  );
}

function modelObject(name: string, created: Date, tenantId: string | null) {
  return { id: name, object: "model", created: Math.floor(created.getTime() / 1000), owned_by: tenantId ? "tenant" : (name.split("/")[0] ?? "infera") };
}
