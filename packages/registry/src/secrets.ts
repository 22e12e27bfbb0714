/**
 * Deployment secrets (the Hugging Face token): sealed with AES-256-GCM under a key
 * derived from the operator's `SECRETS_KEY`, stored in `deployment_secrets` (a table
 * no API view selects), opened only by what starts engines (the runtime driver makes
 * the `infera-hf-<deployment id>` Secret from it). Deleted with the deployment.
 *
 * Rotating SECRETS_KEY: the new key becomes SECRETS_KEY and the old one SECRETS_KEY_PREVIOUS
 * (gateway and scheduler). Values sealed under the previous key still open, and the
 * scheduler re-seals them under the new one (`resealSecrets` at start, and on read), after
 * which the previous key can go.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import type { Db } from "./db.ts";

/** A 32-byte key from any operator-provided string (SHA-256 of it). */
export function secretsKeyFrom(material: string): Buffer {
  return createHash("sha256").update(`infera-secrets-v1\u0000${material}`).digest();
}

export function sealSecret(plain: string, key: Buffer): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  const ct = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()]);
  return `v1:${iv.toString("base64url")}:${cipher.getAuthTag().toString("base64url")}:${ct.toString("base64url")}`;
}

/** Throws when the value was sealed under another key or was tampered with. */
export function openSecret(sealed: string, key: Buffer): string {
  const [v, iv, tag, ct] = sealed.split(":");
  if (v !== "v1" || iv === undefined || tag === undefined || ct === undefined) throw new Error("not a sealed secret");
  const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(iv, "base64url"));
  decipher.setAuthTag(Buffer.from(tag, "base64url"));
  return Buffer.concat([decipher.update(Buffer.from(ct, "base64url")), decipher.final()]).toString("utf8");
}

/**
 * Opens a value with the first of `keys` (current first, then previous ones) that opens it;
 * `keyIndex` says which (0: the current key). Throws when none does.
 */
export function openSecretWithKeys(sealed: string, keys: readonly Buffer[]): { plain: string; keyIndex: number } {
  let last: unknown;
  for (const [keyIndex, key] of keys.entries()) {
    try {
      return { plain: openSecret(sealed, key), keyIndex };
    } catch (err) {
      last = err;
    }
  }
  throw last instanceof Error ? last : new Error("no key opens this sealed secret");
}

/**
 * Re-seals under `keys[0]` every stored token that only an older key of `keys` opens. What
 * no key opens is left as it is (its deployment fails with a reason when it starts).
 * Returns how many were re-sealed and how many no key opens.
 */
export async function resealSecrets(db: Db, keys: readonly Buffer[]): Promise<{ resealed: number; unreadable: number }> {
  const [current] = keys;
  if (!current) return { resealed: 0, unreadable: 0 };
  const rows = await db.selectFrom("deployment_secrets").select(["deployment_id", "hf_token_sealed"]).execute();
  let resealed = 0;
  let unreadable = 0;
  for (const row of rows) {
    let opened: { plain: string; keyIndex: number };
    try {
      opened = openSecretWithKeys(row.hf_token_sealed, keys);
    } catch {
      unreadable++;
      continue;
    }
    if (opened.keyIndex === 0) continue;
    // Only if it is still the value read: a gateway may have stored a new one meanwhile.
    const r = await db
      .updateTable("deployment_secrets")
      .set({ hf_token_sealed: sealSecret(opened.plain, current) })
      .where("deployment_id", "=", row.deployment_id)
      .where("hf_token_sealed", "=", row.hf_token_sealed)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) > 0) resealed++;
  }
  return { resealed, unreadable };
}

export async function putHfToken(db: Db, deploymentId: string, sealed: string): Promise<void> {
  await db
    .insertInto("deployment_secrets")
    .values({ deployment_id: deploymentId, hf_token_sealed: sealed })
    .onConflict((oc) => oc.column("deployment_id").doUpdateSet({ hf_token_sealed: sealed }))
    .execute();
}

/** The sealed token as stored (open it with `openSecret`); undefined when the deployment has none. */
export async function getSealedHfToken(db: Db, deploymentId: string): Promise<string | undefined> {
  const row = await db.selectFrom("deployment_secrets").select("hf_token_sealed").where("deployment_id", "=", deploymentId).executeTakeFirst();
  return row?.hf_token_sealed;
}

/** The plain token, for the runtime driver only; undefined when the deployment has none. */
export async function getHfToken(db: Db, deploymentId: string, key: Buffer): Promise<string | undefined> {
  const sealed = await getSealedHfToken(db, deploymentId);
  return sealed === undefined ? undefined : openSecret(sealed, key);
}

export async function deleteDeploymentSecrets(db: Db, deploymentId: string): Promise<void> {
  await db.deleteFrom("deployment_secrets").where("deployment_id", "=", deploymentId).execute();
}
