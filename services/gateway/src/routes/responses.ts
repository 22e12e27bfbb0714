/**
 * The Responses API routes (`/responses`, retrieve, delete, input items), inside the tenant
 * API's scope (its key check and access log). Creating one runs the chat route's own pipeline
 * on the translated request (responses-api.ts); stored responses are the tenant's alone.
 */
import type { ServerResponse } from "node:http";
import Type from "typebox";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { type Logger, PlatformError } from "@infera/core";
import { deleteResponse, findItems, findResponse, saveResponse, type DB } from "@infera/registry";
import type { Kysely } from "kysely";
import { queryValidator } from "../validation.ts";
import type { Principal } from "../auth.ts";
import type { ChatCompletionRequest } from "../openai-schema.ts";
import { inputItems, newId, referencedIds, type ResponsesRequest, ResponsesWriter, toChat } from "../responses-api.ts";

const Nullable = <T extends Type.TSchema>(t: T) => Type.Optional(Type.Union([t, Type.Null()]));
const AnyObject = Type.Record(Type.String(), Type.Unknown());

/** The request's shape; items, tools and formats are checked by the translation, which names the field at fault. */
export const CreateResponseRequest = Type.Object(
  {
    model: Type.String({ minLength: 1 }),
    input: Type.Union([Type.String(), Type.Array(AnyObject, { minItems: 1, maxItems: 4096 })]),
    instructions: Nullable(Type.String()),
    tools: Type.Optional(Type.Array(AnyObject, { maxItems: 128 })),
    tool_choice: Type.Optional(Type.Union([Type.String(), AnyObject])),
    text: Type.Optional(Type.Object({ format: Type.Optional(AnyObject), verbosity: Nullable(Type.String()) }, { additionalProperties: false })),
    max_output_tokens: Nullable(Type.Integer({ minimum: 1 })),
    temperature: Nullable(Type.Number({ minimum: 0, maximum: 2 })),
    top_p: Nullable(Type.Number({ minimum: 0, maximum: 1 })),
    top_logprobs: Nullable(Type.Integer({ minimum: 0, maximum: 20 })),
    max_tool_calls: Nullable(Type.Integer({ minimum: 0 })),
    metadata: Nullable(Type.Record(Type.String(), Type.String({ maxLength: 512 }), { maxProperties: 16, propertyNames: { maxLength: 64 } })),
    store: Nullable(Type.Boolean()),
    stream: Nullable(Type.Boolean()),
    stream_options: Nullable(AnyObject),
    previous_response_id: Nullable(Type.String({ minLength: 1, maxLength: 256 })),
    user: Type.Optional(Type.String()),
    safety_identifier: Type.Optional(Type.String()),
    parallel_tool_calls: Nullable(Type.Boolean()),
    prompt_cache_key: Type.Optional(Type.String()),
    service_tier: Nullable(Type.String()),
    truncation: Nullable(Type.Union([Type.Literal("auto"), Type.Literal("disabled")])),
    include: Nullable(Type.Array(Type.String())),
    reasoning: Nullable(AnyObject),
    background: Nullable(Type.Boolean()),
    // In the SDK's params; not built: refused with a 400 naming them unless null.
    conversation: Nullable(Type.Union([Type.String(), AnyObject])),
    prompt: Nullable(AnyObject),
    context_management: Nullable(Type.Array(AnyObject)),
    // Accepted and ignored: the engine's prefix cache is the cache.
    prompt_cache_retention: Nullable(Type.Union([Type.Literal("in-memory"), Type.Literal("24h")])),
  },
  { additionalProperties: false },
);

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 256 }) });
const ItemsQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
  order: Type.Optional(Type.Union([Type.Literal("asc"), Type.Literal("desc")], { default: "desc" })),
  after: Type.Optional(Type.String({ maxLength: 256 })),
  include: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())])),
});

export interface ResponsesRouteDeps {
  db: Kysely<DB>;
  retentionDays: number;
  logger: Logger;
  principalOf: (req: FastifyRequest) => Principal;
  /** The chat route's handler, answering on `res`. */
  chat: (req: FastifyRequest, reply: FastifyReply, body: ChatCompletionRequest, res: ServerResponse) => Promise<void>;
}

const notFound = (id: string, param: string | null = null) => new PlatformError("not_found", `No response found with id '${id}'.`, { param });

export function registerResponsesRoutes(scope: FastifyInstance, d: ResponsesRouteDeps): void {
  scope.post("/responses", { schema: { body: CreateResponseRequest } }, async (req, reply) => {
    const body = req.body as ResponsesRequest;
    const tenantId = d.principalOf(req).tenantId;
    const refs = referencedIds(body.input);
    const items = inputItems(body.input, refs.length > 0 ? await findItems(d.db, tenantId, refs) : undefined);
    let conversation = items;
    if (body.previous_response_id) {
      const prev = await findResponse(d.db, tenantId, body.previous_response_id);
      if (!prev) throw notFound(body.previous_response_id, "previous_response_id");
      conversation = [...prev.conversation, ...((prev.response.output as Record<string, unknown>[]) ?? []), ...items];
    }
    const chat = toChat(body, conversation);
    const createdAt = new Date();
    const writer = new ResponsesWriter(
      reply.raw,
      {
        id: newId("resp"),
        createdAt: Math.floor(createdAt.getTime() / 1000),
        body,
        onFinished: async (response) => {
          if (body.store === false) return;
          await saveResponse(d.db, {
            id: response.id as string,
            tenantId,
            createdAt,
            expiresAt: new Date(createdAt.getTime() + d.retentionDays * 86_400_000),
            response,
            inputItems: items,
            conversation,
          });
        },
      },
      (err) => d.logger.error({ err, requestId: req.id }, "storing the response failed"),
    );
    await d.chat(req, reply, chat, writer.asResponse());
  });

  const stored = async (req: FastifyRequest) => {
    const { id } = req.params as { id: string };
    const r = await findResponse(d.db, d.principalOf(req).tenantId, id);
    if (!r) throw notFound(id);
    return r;
  };

  scope.get("/responses/:id", { schema: { params: IdParams } }, async (req) => (await stored(req)).response);

  scope.delete("/responses/:id", { schema: { params: IdParams } }, async (req) => {
    const { id } = req.params as { id: string };
    if (!(await deleteResponse(d.db, d.principalOf(req).tenantId, id))) throw notFound(id);
    return { id, object: "response", deleted: true };
  });

  scope.get("/responses/:id/input_items", { schema: { params: IdParams, querystring: ItemsQuery }, validatorCompiler: queryValidator }, async (req) => {
    const r = await stored(req);
    const q = req.query as { limit?: number; order?: "asc" | "desc"; after?: string };
    const limit = q.limit ?? 20;
    const order = q.order ?? "desc";
    let items = order === "asc" ? r.inputItems : [...r.inputItems].reverse();
    if (q.after !== undefined) {
      const at = items.findIndex((x) => x.id === q.after);
      if (at === -1) throw new PlatformError("invalid_request", `No input item with id '${q.after}' in this response.`, { param: "after" });
      items = items.slice(at + 1);
    }
    const page = items.slice(0, limit);
    return {
      object: "list",
      data: page,
      first_id: (page[0]?.id as string | undefined) ?? null,
      last_id: (page.at(-1)?.id as string | undefined) ?? null,
      has_more: items.length > limit,
    };
  });
}
