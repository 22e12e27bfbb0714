/**
 * Files (the Files API): the metadata of bodies held in the blob store (@infera/storage).
 * Per tenant: another tenant's id reads as absent, and so do deleted and expired files.
 */
import { randomBytes } from "node:crypto";
import { sql } from "kysely";
import type { Db } from "./db.ts";
import type { FilePurpose, FileRow } from "./schema.ts";

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZabcdefghjkmnpqrstvwxyz";

/** `file-` and 24 random characters (OpenAI's shape; ~137 bits). */
export function newFileId(): string {
  const bytes = randomBytes(24);
  let out = "file-";
  for (const b of bytes) out += ALPHABET[b % ALPHABET.length];
  return out;
}

/** Where a file's body goes in the blob store: by tenant, then id. */
export function fileStorageKey(tenantId: string, fileId: string): string {
  return `files/${tenantId}/${fileId}`;
}

export interface StoredFile {
  id: string;
  tenantId: string;
  purpose: FilePurpose;
  filename: string;
  bytes: number;
  lineCount: number;
  /** The one `url` every line of a batch input uses (`/v1/chat/completions`); null for outputs. */
  batchEndpoint: string | null;
  storageKey: string;
  status: "processed";
  createdAt: Date;
  expiresAt: Date | null;
}

export interface NewFile {
  /** Default: a new one (newFileId). Pass one when the body was stored under it first. */
  id?: string;
  tenantId: string;
  purpose: FilePurpose;
  filename: string;
  bytes: number;
  lineCount: number;
  batchEndpoint?: string | null;
  /** Default: fileStorageKey(tenantId, id). */
  storageKey?: string;
  createdAt?: Date;
  expiresAt?: Date | null;
}

function toFile(r: FileRow): StoredFile {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    purpose: r.purpose,
    filename: r.filename,
    bytes: Number(r.bytes),
    lineCount: r.line_count,
    batchEndpoint: r.batch_endpoint,
    storageKey: r.storage_key,
    status: r.status,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
  };
}

/** Records a file whose body is already in the blob store. */
export async function createFile(db: Db, f: NewFile): Promise<StoredFile> {
  const id = f.id ?? newFileId();
  const row = await db
    .insertInto("files")
    .values({
      id,
      tenant_id: f.tenantId,
      purpose: f.purpose,
      filename: f.filename,
      bytes: f.bytes,
      line_count: f.lineCount,
      batch_endpoint: f.batchEndpoint ?? null,
      storage_key: f.storageKey ?? fileStorageKey(f.tenantId, id),
      created_at: f.createdAt ?? new Date(),
      expires_at: f.expiresAt ?? null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toFile(row);
}

/** The tenant's file `id`; undefined for another tenant's, a deleted or an expired one. */
export async function getFile(db: Db, tenantId: string, id: string, now = new Date()): Promise<StoredFile | undefined> {
  const row = await db
    .selectFrom("files")
    .selectAll()
    .where("id", "=", id)
    .where("tenant_id", "=", tenantId)
    .where("deleted_at", "is", null)
    .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", now)]))
    .executeTakeFirst();
  return row && toFile(row);
}

export interface ListFilesOptions {
  purpose?: FilePurpose;
  limit: number;
  /** A file id: the page starts after it (in `order`). */
  after?: string;
  order: "asc" | "desc";
}

/** One page of the tenant's live files by creation time; `hasMore` when another page follows. */
export async function listFiles(db: Db, tenantId: string, o: ListFilesOptions, now = new Date()): Promise<{ data: StoredFile[]; hasMore: boolean }> {
  let q = db
    .selectFrom("files")
    .selectAll()
    .where("tenant_id", "=", tenantId)
    .where("deleted_at", "is", null)
    .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", now)]));
  if (o.purpose) q = q.where("purpose", "=", o.purpose);
  if (o.after !== undefined) {
    const c = await db.selectFrom("files").select(["created_at", "id"]).where("id", "=", o.after).where("tenant_id", "=", tenantId).executeTakeFirst();
    // An unknown cursor (another tenant's, never issued) starts nowhere.
    if (!c) return { data: [], hasMore: false };
    q = q.where(sql<boolean>`(created_at, id) ${sql.raw(o.order === "asc" ? ">" : "<")} (${c.created_at}, ${c.id})`);
  }
  const rows = await q
    .orderBy("created_at", o.order)
    .orderBy("id", o.order)
    .limit(o.limit + 1)
    .execute();
  return { data: rows.slice(0, o.limit).map(toFile), hasMore: rows.length > o.limit };
}

/** Marks the tenant's file deleted (its body is the caller's to delete); the file as it was, or undefined when it had none such. */
export async function deleteFile(db: Db, tenantId: string, id: string, now = new Date()): Promise<StoredFile | undefined> {
  const row = await db
    .updateTable("files")
    .set({ deleted_at: now })
    .where("id", "=", id)
    .where("tenant_id", "=", tenantId)
    .where("deleted_at", "is", null)
    .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", now)]))
    .returningAll()
    .executeTakeFirst();
  return row && toFile(row);
}

/** Files past `expires_at` and not yet deleted, oldest first (for the expiry chore, which deletes their bodies, then marks them). */
export async function expiredFiles(db: Db, now = new Date(), limit = 500): Promise<StoredFile[]> {
  const rows = await db
    .selectFrom("files")
    .selectAll()
    .where("deleted_at", "is", null)
    .where("expires_at", "<=", now)
    .orderBy("expires_at")
    .limit(limit)
    .execute();
  return rows.map(toFile);
}

/** Marks files deleted by id (after their bodies were removed). */
export async function markFilesDeleted(db: Db, ids: readonly string[], now = new Date()): Promise<number> {
  if (ids.length === 0) return 0;
  const r = await db.updateTable("files").set({ deleted_at: now }).where("id", "in", ids).where("deleted_at", "is", null).executeTakeFirst();
  return Number(r.numUpdatedRows);
}
