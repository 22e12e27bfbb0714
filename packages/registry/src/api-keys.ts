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
  expiresAt?: Date | null;
  models?: string[] | null;
  monthlyTokenBudget?: number | null;
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
      expires_at: input.expiresAt ?? null,
      models: input.models ?? null,
      monthly_token_budget: input.monthlyTokenBudget ?? null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return { key, secret };
}

/**
 * Looks a key up by the hash of the presented secret (an indexed equality on a hash: no
 * timing oracle on the secret): its current secret, or the one before its last rotation
 * while that one's grace lasts (`matched: "previous"`).
 */
export async function findKeyByHash(db: Db, hash: string): Promise<(ApiKey & { matched: "current" | "previous" }) | undefined> {
  const current = await db.selectFrom("api_keys").selectAll().where("hash", "=", hash).executeTakeFirst();
  if (current) return { ...current, matched: "current" };
  const previous = await db
    .selectFrom("api_keys")
    .selectAll()
    .where("previous_hash", "=", hash)
    .where("previous_expires_at", ">", new Date())
    .executeTakeFirst();
  return previous ? { ...previous, matched: "previous" } : undefined;
}

export interface KeyChange {
  name?: string;
  expiresAt?: Date | null;
  models?: string[] | null;
  monthlyTokenBudget?: number | null;
}

/** Changes a key's name, expiry, models or budget (undefined: unchanged). */
export async function updateApiKey(db: Db, id: string, change: KeyChange): Promise<ApiKey | undefined> {
  const set: Record<string, unknown> = {};
  if (change.name !== undefined) set.name = change.name;
  if (change.expiresAt !== undefined) set.expires_at = change.expiresAt;
  if (change.models !== undefined) set.models = change.models;
  if (change.monthlyTokenBudget !== undefined) set.monthly_token_budget = change.monthlyTokenBudget;
  if (Object.keys(set).length === 0) return getApiKey(db, id);
  return db.updateTable("api_keys").set(set).where("id", "=", id).returningAll().executeTakeFirst();
}

/**
 * A new secret for a key that is not revoked; the one it replaces keeps working until
 * `graceUntil` (the one before that stops now). Limits, budget and usage stay the key's.
 */
export async function rotateApiKey(db: Db, id: string, graceUntil: Date): Promise<{ key: ApiKey; secret: string } | undefined> {
  const secret = generateSecret();
  const key = await db
    .updateTable("api_keys")
    .set((eb) => ({ previous_hash: eb.ref("hash"), previous_expires_at: graceUntil, hash: hashSecret(secret), prefix: displayPrefix(secret) }))
    .where("id", "=", id)
    .where("revoked_at", "is", null)
    .returningAll()
    .executeTakeFirst();
  return key ? { key, secret } : undefined;
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
