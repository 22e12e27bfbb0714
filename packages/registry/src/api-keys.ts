import { createHash, randomBytes } from "node:crypto";
import type { ApiKey, KeyTier, Scope } from "./schema.ts";
import type { Db } from "./db.ts";
import { newId } from "./ids.ts";

export const ALL_SCOPES: readonly Scope[] = ["admin", "deploy", "inference"];

/** `sk-` + 32 random bytes in base64url: 256 bits. */
export function generateSecret(): string {
  return `sk-${randomBytes(32).toString("base64url")}`;
}

export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

export function displayPrefix(secret: string): string {
  return `${secret.slice(0, 7)}…`;
}

export interface CreateKeyInput {
  tenantId: string;
  name: string;
  scopes: Scope[];
  tier?: KeyTier;
  rpm?: number | null;
  tpm?: number | null;
  maxConcurrent?: number | null;
  /** Use this exact secret (BOOTSTRAP_ADMIN_KEY); otherwise one is generated. */
  secret?: string;
}

/** Creates a key; the secret is returned here once and never stored. */
export async function createApiKey(db: Db, input: CreateKeyInput): Promise<{ key: ApiKey; secret: string }> {
  const secret = input.secret ?? generateSecret();
  const key = await db
    .insertInto("api_keys")
    .values({
      id: newId("key"),
      tenant_id: input.tenantId,
      name: input.name,
      prefix: displayPrefix(secret),
      hash: hashSecret(secret),
      scopes: input.scopes,
      tier: input.tier ?? "standard",
      rpm: input.rpm ?? null,
      tpm: input.tpm ?? null,
      max_concurrent: input.maxConcurrent ?? null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return { key, secret };
}

/** Looks a key up by the hash of the presented secret (an indexed equality on a hash: no timing oracle on the secret). */
export async function findKeyByHash(db: Db, hash: string): Promise<ApiKey | undefined> {
  return db.selectFrom("api_keys").selectAll().where("hash", "=", hash).executeTakeFirst();
}

export async function getApiKey(db: Db, id: string): Promise<ApiKey | undefined> {
  return db.selectFrom("api_keys").selectAll().where("id", "=", id).executeTakeFirst();
}

export async function listApiKeys(db: Db, tenantId?: string): Promise<ApiKey[]> {
  let q = db.selectFrom("api_keys").selectAll().orderBy("created_at");
  if (tenantId) q = q.where("tenant_id", "=", tenantId);
  return q.execute();
}

export async function revokeApiKey(db: Db, id: string): Promise<ApiKey | undefined> {
  return db.updateTable("api_keys").set({ revoked_at: new Date() }).where("id", "=", id).where("revoked_at", "is", null).returningAll().executeTakeFirst();
}
