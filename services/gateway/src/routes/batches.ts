/**
 * The Batch API routes (`/batches`: create, retrieve, list, cancel), inside the tenant API's
 * scope (its key check and access log). A batch is recorded in Postgres first and then
 * announced to the scheduler's BullMQ chores; if Redis misses the announcement, the
 * reconcile sweep finds the batch still validating and starts it. Another tenant's batch,
 * like an unknown id, is a 404; a refused create creates nothing.
 */
import Type from "typebox";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { type Logger, PlatformError } from "@infera/core";
import type { JobQueues } from "@infera/jobs";
import { type BatchWithCounts, createBatch, getBatch, getFile, listBatches, requestCancel } from "@infera/registry";
import type { Principal } from "../auth.ts";
import { queryValidator } from "../validation.ts";
import { BATCH_ENDPOINTS } from "../batch-runner.ts";
import type { GatewayContext } from "../context.ts";
import { cursorPage } from "../list-page.ts";

/** `output_expires_after.seconds`' bounds (OpenAI's: an hour to 30 days). */
const OUTPUT_TTL_MIN_S = 3600;
const OUTPUT_TTL_MAX_S = 30 * 86_400;

export const CreateBatchRequest = Type.Object(
  {
    input_file_id: Type.String({ minLength: 1, maxLength: 256 }),
    endpoint: Type.String({ minLength: 1, maxLength: 256 }),
    completion_window: Type.String({ maxLength: 64 }),
    metadata: Type.Optional(
      Type.Union([Type.Record(Type.String(), Type.String({ maxLength: 512 }), { maxProperties: 16, propertyNames: { maxLength: 64 } }), Type.Null()]),
    ),
    // OpenAI's: the output and error files expire `seconds` after they are written (1 hour to 30 days); absent: they are kept.
    output_expires_after: Type.Optional(
      Type.Union([
        Type.Object(
          { anchor: Type.Literal("created_at"), seconds: Type.Integer({ minimum: OUTPUT_TTL_MIN_S, maximum: OUTPUT_TTL_MAX_S }) },
          { additionalProperties: false },
        ),
        Type.Null(),
      ]),
    ),
  },
  { additionalProperties: false },
);

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 256 }) });
const ListQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
  after: Type.Optional(Type.String({ maxLength: 256 })),
});

const WINDOW_MS: Record<string, number> = { "24h": 86_400_000 };

const seconds = (d: Date | null) => (d ? Math.floor(d.getTime() / 1000) : null);

/** OpenAI's Batch object. */
export function batchObject(b: BatchWithCounts) {
  return {
    id: b.id,
    object: "batch",
    endpoint: b.endpoint,
    errors: b.errors,
    input_file_id: b.input_file_id,
    completion_window: b.completion_window,
    status: b.status,
    output_file_id: b.output_file_id,
    error_file_id: b.error_file_id,
    created_at: seconds(b.created_at),
    in_progress_at: seconds(b.in_progress_at),
    expires_at: seconds(b.expires_at),
    finalizing_at: seconds(b.finalizing_at),
    completed_at: seconds(b.completed_at),
    failed_at: seconds(b.failed_at),
    expired_at: seconds(b.expired_at),
    cancelling_at: seconds(b.cancelling_at),
    cancelled_at: seconds(b.cancelled_at),
    request_counts: { total: b.total, completed: b.completed, failed: b.failed },
    metadata: b.metadata,
  };
}

export interface BatchRouteDeps {
  ctx: GatewayContext;
  jobs: JobQueues;
  logger: Logger;
  principalOf: (req: FastifyRequest) => Principal;
}

const notFound = (id: string) => new PlatformError("not_found", `No batch found with id '${id}'.`);

export function registerBatchRoutes(scope: FastifyInstance, d: BatchRouteDeps): void {
  const { db } = d.ctx;

  scope.post("/batches", { schema: { body: CreateBatchRequest } }, async (req) => {
    const body = req.body as {
      input_file_id: string;
      endpoint: string;
      completion_window: string;
      metadata?: Record<string, string> | null;
      output_expires_after?: { anchor: "created_at"; seconds: number } | null;
    };
    const p = d.principalOf(req);
    if (!(BATCH_ENDPOINTS as string[]).includes(body.endpoint)) {
      throw new PlatformError("invalid_request", `Invalid 'endpoint': '${body.endpoint}'. Supported: ${BATCH_ENDPOINTS.join(", ")}.`, { param: "endpoint" });
    }
    const windowMs = WINDOW_MS[body.completion_window];
    if (windowMs === undefined) {
      throw new PlatformError("invalid_request", `Invalid 'completion_window': '${body.completion_window}'. Supported: 24h.`, { param: "completion_window" });
    }
    const file = await getFile(db, p.tenantId, body.input_file_id);
    if (!file) throw new PlatformError("not_found", `No such File object: ${body.input_file_id}`, { param: "input_file_id" });
    if (file.purpose !== "batch") {
      throw new PlatformError("invalid_request", `The file ${file.id} has purpose '${file.purpose}'; a batch's input file must have purpose 'batch'.`, {
        param: "input_file_id",
      });
    }
    if (file.batchEndpoint !== body.endpoint) {
      throw new PlatformError(
        "invalid_request",
        `Line 1: the request's url '${file.batchEndpoint}' does not match the batch's endpoint '${body.endpoint}'; every line must use the batch's endpoint.`,
        { param: "endpoint" },
      );
    }
    const now = new Date();
    const batch = await createBatch(db, {
      tenantId: p.tenantId,
      keyId: p.keyId,
      endpoint: body.endpoint,
      inputFileId: file.id,
      completionWindow: body.completion_window,
      total: file.lineCount,
      metadata: body.metadata ?? null,
      createdAt: now,
      expiresAt: new Date(now.getTime() + windowMs),
      outputExpiresAfterS: body.output_expires_after?.seconds ?? null,
    });
    // Recorded first: a start Redis misses is made by the reconcile sweep.
    await d.jobs
      .add("batch.start", { batchId: batch.id }, { jobId: `start-${batch.id}` })
      .catch((err: unknown) => d.logger.warn({ err, batchId: batch.id }, "could not announce the batch; the reconcile sweep starts it"));
    return batchObject(batch);
  });

  scope.get("/batches/:id", { schema: { params: IdParams } }, async (req) => {
    const { id } = req.params as { id: string };
    const b = await getBatch(db, d.principalOf(req).tenantId, id);
    if (!b) throw notFound(id);
    return batchObject(b);
  });

  scope.get("/batches", { schema: { querystring: ListQuery }, validatorCompiler: queryValidator }, async (req) => {
    const q = req.query as { limit?: number; after?: string };
    const limit = q.limit ?? 20;
    const rows = await listBatches(db, d.principalOf(req).tenantId, { after: q.after, limit: limit + 1 });
    return cursorPage(rows.slice(0, limit).map(batchObject), rows.length > limit);
  });

  scope.post("/batches/:id/cancel", { schema: { params: IdParams } }, async (req) => {
    const { id } = req.params as { id: string };
    const b = await requestCancel(db, d.principalOf(req).tenantId, id);
    if (!b) throw notFound(id);
    if (b.status !== "cancelling" && b.status !== "cancelled") {
      throw new PlatformError("conflict", `Cannot cancel a batch with status '${b.status}'.`);
    }
    if (b.status === "cancelling") {
      await d.jobs
        .add("batch.cancel", { batchId: id }, { jobId: `cancel-${id}` })
        .catch((err: unknown) => d.logger.warn({ err, batchId: id }, "could not announce the cancel; the reconcile sweep ends it"));
    }
    return batchObject(b);
  });
}
