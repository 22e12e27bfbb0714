/**
 * The Files API (`/files`, retrieve, delete, content), inside the tenant API's scope (its key
 * check and access log). An upload streams through the batch input check into the blob store:
 * no body is held whole in memory, Postgres or Redis; a file with a fault anywhere is refused
 * with its line and nothing is kept. Files are their tenant's alone: another tenant's id
 * answers as an unknown one.
 */
import { basename } from "node:path";
import Type from "typebox";
import multipart from "@fastify/multipart";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Kysely } from "kysely";
import { Ajv } from "ajv";
import { type Logger, PlatformError } from "@infera/core";
import { createFile, deleteFile, fileStorageKey, getFile, listFiles, newFileId, type DB, type FilePurpose, type StoredFile } from "@infera/registry";
import { BlobNotFound, type BlobStore } from "@infera/storage";
import type { Principal } from "../auth.ts";
import { BATCH_ENDPOINTS, BatchInputChecker, type BatchInputSummary, checking, lineError } from "../batch-input.ts";
import type { EndpointKind } from "../inference.ts";

/** Purposes a tenant may upload: `batch` only (this platform has no assistants, vision or fine-tuning to feed). */
const UPLOAD_PURPOSES = ["batch"] as const;
/** What a listing may filter on: uploads, and the batch output and error files the platform writes. */
const LIST_PURPOSES: readonly FilePurpose[] = ["batch", "batch_output"];
/** OpenAI's default for batch input files: kept 30 days unless `expires_after` says otherwise. */
const BATCH_FILE_TTL_S = 30 * 86_400;
const MIN_TTL_S = 3600;
const MAX_TTL_S = 30 * 86_400;
const MAX_FILENAME = 255;
/** The form fields an upload takes besides `file`. */
const FIELDS = new Set(["purpose", "expires_after[anchor]", "expires_after[seconds]"]);

const IdParams = Type.Object({ file_id: Type.String({ minLength: 1, maxLength: 256 }) });
const ListQuery = Type.Object({
  purpose: Type.Optional(Type.String({ maxLength: 64 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
  order: Type.Optional(Type.Union([Type.Literal("asc"), Type.Literal("desc")])),
  after: Type.Optional(Type.String({ maxLength: 256 })),
});
/** The upload's fields, as the document shows them (the route reads them from the stream, not through a schema). */
const UploadForm = Type.Object({
  file: Type.String({ format: "binary", description: "A JSONL file: one batch request per line (OpenAI's batch input format)." }),
  purpose: Type.Union([Type.Literal("batch")], { description: "What the file is for: `batch` (the Batch API)." }),
  "expires_after[anchor]": Type.Optional(Type.Literal("created_at")),
  "expires_after[seconds]": Type.Optional(Type.Integer({ minimum: MIN_TTL_S, maximum: MAX_TTL_S })),
});

export interface FilesRouteDeps {
  db: Kysely<DB>;
  blobs: BlobStore;
  limits: { maxBytes: number; maxLines: number; maxLineBytes: number };
  logger: Logger;
  principalOf: (req: FastifyRequest) => Principal;
  /** Throws when the tenant's key cannot call `model` on that endpoint (the chat route's own resolution). */
  checkModel: (req: FastifyRequest, model: string, endpoint: EndpointKind) => Promise<unknown>;
}

/** OpenAI's File object. */
export function fileObject(f: StoredFile) {
  return {
    id: f.id,
    object: "file" as const,
    bytes: f.bytes,
    created_at: Math.floor(f.createdAt.getTime() / 1000),
    expires_at: f.expiresAt ? Math.floor(f.expiresAt.getTime() / 1000) : null,
    filename: f.filename,
    purpose: f.purpose,
    status: f.status,
  };
}

const notFound = (id: string) => new PlatformError("not_found", `No such File object: ${id}`, { param: "file_id" });
const missing = (param: string) => new PlatformError("invalid_request", `Missing required parameter: '${param}'.`, { param });

/** A multipart limit or framing error from the parser, as the 400 it is. */
function formError(err: unknown): PlatformError | undefined {
  const code = (err as { code?: string }).code;
  if (code === "FST_FILES_LIMIT") return new PlatformError("invalid_request", "Send one file per upload.", { param: "file" });
  if (code === "FST_PARTS_LIMIT" || code === "FST_FIELDS_LIMIT")
    return new PlatformError("invalid_request", "The form has more fields than an upload takes (file, purpose, expires_after).");
  if (code === "FST_INVALID_MULTIPART_CONTENT_TYPE") return new PlatformError("invalid_request", "Content-Type must be multipart/form-data.");
  if (code === "FST_PROTO_VIOLATION") return new PlatformError("invalid_request", "The form has a field name this server does not take.");
  if (err instanceof Error && /multipart|Part terminated|Unexpected end of form/i.test(err.message))
    return new PlatformError("invalid_request", `The multipart/form-data body is malformed (${err.message}).`);
  return undefined;
}

export async function registerFilesRoutes(scope: FastifyInstance, d: FilesRouteDeps): Promise<void> {
  await scope.register(multipart, {
    // One past the limit, so the batch check (which names the line) is what refuses a file too large.
    limits: { fileSize: d.limits.maxBytes + 1, files: 1, fields: 8, parts: 9, fieldSize: 1024, fieldNameSize: 64, headerPairs: 64 },
  });

  scope.post(
    "/files",
    {
      schema: { consumes: ["multipart/form-data"], body: UploadForm },
      // The body is a stream read by the handler, not a parsed object: the schema is the document's only.
      validatorCompiler: () => () => true,
    },
    async (req, reply) => {
      if (!req.isMultipart()) throw new PlatformError("invalid_request", "Content-Type must be multipart/form-data, with the fields file and purpose.");
      const tenantId = d.principalOf(req).tenantId;
      const id = newFileId();
      const key = fileStorageKey(tenantId, id);
      const fields: Record<string, string> = {};
      let stored: { filename: string; summary: BatchInputSummary } | undefined;
      const refusePurpose = (purpose: string) => {
        if (!(UPLOAD_PURPOSES as readonly string[]).includes(purpose)) {
          throw new PlatformError(
            "invalid_request",
            `Invalid value for 'purpose': ${JSON.stringify(purpose.slice(0, 64))}. Supported values are: ${UPLOAD_PURPOSES.map((p) => `'${p}'`).join(", ")}.`,
            { param: "purpose" },
          );
        }
      };
      try {
        for await (const part of req.parts()) {
          if (part.type === "field") {
            if (part.fieldname in fields)
              throw new PlatformError("invalid_request", `The field '${part.fieldname}' is given twice.`, { param: part.fieldname });
            if (part.fieldname === "file")
              throw new PlatformError("invalid_request", "'file' must be a file (a part with a filename), not a text field.", { param: "file" });
            if (!FIELDS.has(part.fieldname)) {
              throw new PlatformError("invalid_request", `Unrecognized request argument supplied: ${part.fieldname.slice(0, 64)}`, {
                param: part.fieldname.slice(0, 64),
              });
            }
            fields[part.fieldname] = String(part.value);
            if (part.fieldname === "purpose") refusePurpose(fields.purpose!);
            continue;
          }
          if (part.fieldname !== "file") {
            part.file.resume();
            throw new PlatformError("invalid_request", `Unexpected file field '${part.fieldname}'; the file goes in 'file'.`, { param: part.fieldname });
          }
          const filename = basename(part.filename || "file.jsonl").slice(0, MAX_FILENAME);
          let summary: BatchInputSummary | undefined;
          const checker = new BatchInputChecker(d.limits);
          const checked = checking(checker, (s) => (summary = s));
          // The check can fail before the store starts reading (a store awaits before it does): kept here, it is the answer.
          let fault: unknown;
          checked.on("error", (err) => (fault ??= err));
          part.file.once("error", (err) => checked.destroy(err));
          part.file.pipe(checked);
          try {
            await d.blobs.put(key, checked);
          } catch (err) {
            part.file.unpipe(checked);
            part.file.resume();
            throw fault ?? err;
          }
          if (fault) throw fault;
          stored = { filename, summary: summary! };
        }
        const purpose = fields.purpose;
        if (purpose === undefined) throw missing("purpose");
        refusePurpose(purpose);
        if (!stored) throw missing("file");
        const expiresAt = expiry(fields, new Date());
        // Every model the lines name, at the first line naming it: the tenant's key must be able to call it there.
        const endpoint = BATCH_ENDPOINTS[stored.summary.endpoint];
        for (const [model, line] of stored.summary.models) {
          try {
            await d.checkModel(req, model, endpoint);
          } catch (err) {
            if (err instanceof PlatformError && (err.code === "not_found" || err.code === "invalid_request")) throw lineError(line, err.message);
            throw err;
          }
        }
        const f = await createFile(d.db, {
          id,
          tenantId,
          purpose: "batch",
          filename: stored.filename,
          bytes: stored.summary.bytes,
          lineCount: stored.summary.lines,
          batchEndpoint: stored.summary.endpoint,
          storageKey: key,
          expiresAt,
        });
        return reply.send(fileObject(f));
      } catch (err) {
        // Nothing of a refused upload stays.
        await d.blobs.delete(key).catch((e: unknown) => d.logger.warn({ err: e, key }, "removing a refused upload's body failed"));
        throw err instanceof PlatformError ? err : (formError(err) ?? err);
      }
    },
  );

  // Query strings are strings: `limit` is read from one.
  const coercing = new Ajv({ coerceTypes: true, allErrors: true, useDefaults: false, removeAdditional: false, strict: false });
  const validatorCompiler = ({ schema }: { schema: object }) => coercing.compile(schema);
  scope.get("/files", { schema: { querystring: ListQuery }, validatorCompiler }, async (req) => {
    const q = req.query as { purpose?: string; limit?: number; order?: "asc" | "desc"; after?: string };
    if (q.purpose !== undefined && !(LIST_PURPOSES as readonly string[]).includes(q.purpose)) {
      throw new PlatformError(
        "invalid_request",
        `Invalid value for 'purpose': ${JSON.stringify(q.purpose)}. Supported values are: ${LIST_PURPOSES.map((p) => `'${p}'`).join(", ")}.`,
        { param: "purpose" },
      );
    }
    const page = await listFiles(d.db, d.principalOf(req).tenantId, {
      purpose: q.purpose as FilePurpose | undefined,
      limit: q.limit ?? 10_000,
      order: q.order ?? "desc",
      after: q.after,
    });
    const data = page.data.map(fileObject);
    return { object: "list", data, has_more: page.hasMore, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null };
  });

  const owned = async (req: FastifyRequest) => {
    const { file_id } = req.params as { file_id: string };
    const f = await getFile(d.db, d.principalOf(req).tenantId, file_id);
    if (!f) throw notFound(file_id);
    return f;
  };

  scope.get("/files/:file_id", { schema: { params: IdParams } }, async (req) => fileObject(await owned(req)));

  scope.delete("/files/:file_id", { schema: { params: IdParams } }, async (req) => {
    const { file_id } = req.params as { file_id: string };
    const f = await deleteFile(d.db, d.principalOf(req).tenantId, file_id);
    if (!f) throw notFound(file_id);
    // The row says deleted first: a body left behind by a failure here is never served.
    await d.blobs.delete(f.storageKey).catch((err: unknown) => d.logger.warn({ err, fileId: f.id }, "deleting a file's body failed"));
    return { id: f.id, object: "file", deleted: true };
  });

  scope.get("/files/:file_id/content", { schema: { params: IdParams } }, async (req, reply) => {
    const f = await owned(req);
    let body: NodeJS.ReadableStream;
    try {
      body = await d.blobs.get(f.storageKey);
    } catch (err) {
      if (err instanceof BlobNotFound) throw notFound(f.id);
      throw new PlatformError("unavailable", "File storage is temporarily unavailable.", { cause: err, retryAfterS: 1 });
    }
    return reply
      .type("application/octet-stream")
      .header("content-length", String(f.bytes))
      .header("content-disposition", `attachment; filename="${f.filename.replace(/[^\w.-]/g, "_")}"`)
      .send(body);
  });
}

/** `expires_after[anchor]` and `[seconds]` (OpenAI's), or the batch default. */
function expiry(fields: Record<string, string>, now: Date): Date {
  const anchor = fields["expires_after[anchor]"];
  const seconds = fields["expires_after[seconds]"];
  if (anchor === undefined && seconds === undefined) return new Date(now.getTime() + BATCH_FILE_TTL_S * 1000);
  if (anchor !== "created_at") {
    throw new PlatformError(
      "invalid_request",
      `Invalid value for 'expires_after.anchor': ${JSON.stringify(anchor ?? null)}. Supported values are: 'created_at'.`,
      {
        param: "expires_after.anchor",
      },
    );
  }
  const s = Number(seconds);
  if (!Number.isInteger(s) || s < MIN_TTL_S || s > MAX_TTL_S) {
    throw new PlatformError("invalid_request", `Invalid value for 'expires_after.seconds': it must be an integer from ${MIN_TTL_S} to ${MAX_TTL_S}.`, {
      param: "expires_after.seconds",
    });
  }
  return new Date(now.getTime() + s * 1000);
}
