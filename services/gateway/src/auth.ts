/**
 * API key authentication. The presented secret is hashed (SHA-256) and looked up by
 * hash, so the database compares hashes, never secrets; a cached hit is confirmed
 * with a constant-time compare. Keys are cached for a short TTL; a revocation is
 * published on Redis so every gateway drops the key at once, and a Postgres outage
 * keeps serving keys already known.
 *
 * A gateway that misses the message (it was reconnecting) still stops a revoked key
 * within a second: revoked key ids are also kept in a Redis set, which the inference
 * admission script checks on every request for free (same round trip), and which this
 * cache consults for a key at most once a second otherwise. Unknown secrets are
 * remembered for one second at most, so a key created on another gateway works at once.
 */
import { timingSafeEqual } from "node:crypto";
import type { Redis } from "ioredis";
import type { Kysely } from "kysely";
import { PlatformError } from "@infera/core";
import { findKeyByHash, getApiKey, hashSecret, type ApiKey, type DB, type Scope } from "@infera/registry";

export interface Principal {
  keyId: string;
  tenantId: string;
  scopes: readonly Scope[];
  tier: ApiKey["tier"];
  rpm: number | null;
  tpm: number | null;
  maxConcurrent: number | null;
  /** Unix ms after which the key is refused; null: never. */
  expiresAt?: number | null;
  /** Models (full names) the key may use; null: every model its tenant sees. */
  models?: readonly string[] | null;
  /** Tokens per calendar month (UTC); null: no budget. */
  monthlyTokenBudget?: number | null;
  /** The hash of the secret this principal was authenticated with (the admission script checks it against the key's state). */
  secretHash?: string;
}

interface Entry {
  principal: Principal | null;
  hash: Buffer;
  at: number;
  /** A secret replaced by a rotation: accepted until then (unix ms). */
  graceUntil?: number;
  /** When the revocation set was last consulted for this key. */
  checkedAt: number;
}

/** Where revoked key ids are kept and announced (Redis). */
export interface Revocations {
  isRevoked(keyId: string): Promise<boolean>;
  /** Records the revocation and tells every gateway. */
  announce(keyId: string): Promise<void>;
  /** A key changed (expiry, budget, models, secret): the admission script's state and every gateway's cache. */
  changed(keyId: string, state: KeyState): Promise<void>;
}

/** What the admission script checks of a key besides its limits (written on every change). */
export interface KeyState {
  expiresAt: number | null;
  monthlyTokenBudget: number | null;
  /** The current secret's hash, and the replaced one's with the end of its grace (unix ms). */
  hash: string;
  previousHash: string | null;
  previousUntil: number | null;
}

export class RedisRevocations implements Revocations {
  constructor(
    private readonly redis: Redis,
    /** The set's key (shared with the admission script) and the pub/sub channel. */
    private readonly setKey: string,
    private readonly channel: string,
    /** The key's state hash (shared with the admission script). */
    private readonly stateKey: (keyId: string) => string,
  ) {}

  async isRevoked(keyId: string): Promise<boolean> {
    return (await this.redis.sismember(this.setKey, keyId)) === 1;
  }

  async announce(keyId: string): Promise<void> {
    await this.redis.multi().sadd(this.setKey, keyId).publish(this.channel, keyId).exec();
  }

  async changed(keyId: string, state: KeyState): Promise<void> {
    await this.redis
      .multi()
      .hset(
        this.stateKey(keyId),
        "exp",
        state.expiresAt ?? 0,
        "budget",
        state.monthlyTokenBudget ?? 0,
        "h",
        state.hash,
        "ph",
        state.previousHash ?? "",
        "pu",
        state.previousUntil ?? 0,
      )
      .publish(this.channel, keyId)
      .exec();
  }
}

/** How long an unknown secret's miss is remembered: short, so a key created elsewhere works at once. */
const NEGATIVE_TTL_MS = 1000;
/** At most this long between revocation checks of a cached key. */
const REVOCATION_CHECK_MS = 1000;

export class KeyCache {
  private readonly byHash = new Map<string, Entry>();

  constructor(
    private readonly db: Kysely<DB>,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
    private readonly revocations?: Revocations,
  ) {}

  async authenticate(authorization: string | undefined): Promise<Principal> {
    const secret = authorization?.startsWith("Bearer ") ? authorization.slice(7).trim() : undefined;
    if (!secret) {
      throw new PlatformError("invalid_api_key", "You didn't provide an API key. Provide it in the Authorization header as 'Bearer YOUR_KEY'.");
    }
    if (secret.length > 256) throw invalidKey();
    const hashHex = hashSecret(secret);
    const hash = Buffer.from(hashHex, "hex");
    let entry = this.byHash.get(hashHex);
    const now = this.now();
    if (!entry || now - entry.at > (entry.principal ? this.ttlMs : Math.min(this.ttlMs, NEGATIVE_TTL_MS))) {
      try {
        const row = await findKeyByHash(this.db, hashHex);
        const previous = row?.matched === "previous";
        entry = {
          principal: row && !row.revoked_at ? { ...toPrincipal(row), secretHash: hashHex } : null,
          // A rotated-out secret is the row's previous hash: the one presented.
          hash: row && !previous ? Buffer.from(row.hash, "hex") : hash,
          at: now,
          checkedAt: now,
          graceUntil: previous ? row.previous_expires_at?.getTime() : undefined,
        };
        this.byHash.set(hashHex, entry);
        if (this.byHash.size > 100_000) this.byHash.delete(this.byHash.keys().next().value!);
      } catch (err) {
        // Postgres unreachable: a key we knew keeps working; an unknown one cannot be checked.
        if (!entry) throw new PlatformError("unavailable", "Authentication is temporarily unavailable.", { cause: err, retryAfterS: 1 });
      }
    }
    if (!entry.principal || !timingSafeEqual(entry.hash, hash)) throw invalidKey();
    if (entry.graceUntil !== undefined && now >= entry.graceUntil) throw invalidKey();
    const exp = entry.principal.expiresAt;
    if (exp != null && now >= exp) throw new PlatformError("invalid_api_key", "This API key has expired.");
    if (this.revocations && now - entry.checkedAt > REVOCATION_CHECK_MS) {
      const e = entry;
      e.checkedAt = now;
      let revoked = false;
      try {
        revoked = await this.revocations.isRevoked(e.principal!.keyId);
      } catch {
        // Redis unreachable: Postgres' answer (at most ttl old) stands.
      }
      if (revoked) {
        e.principal = null;
        throw invalidKey();
      }
    }
    return entry.principal;
  }

  /**
   * A key's principal by its id, for work done on its behalf later (a batch's lines run as the
   * key that created the batch); null when the key is gone, revoked or expired.
   */
  async principalOfKey(keyId: string): Promise<Principal | null> {
    const k = await getApiKey(this.db, keyId);
    if (!k || k.revoked_at) return null;
    const p = toPrincipal(k);
    if (p.expiresAt != null && this.now() >= p.expiresAt) return null;
    return { ...p, secretHash: k.hash };
  }

  /** A key was revoked somewhere: forget it now. */
  revoke(keyId: string): void {
    for (const [h, e] of this.byHash) if (e.principal?.keyId === keyId) this.byHash.delete(h);
  }
}

function invalidKey(): PlatformError {
  return new PlatformError("invalid_api_key", "Incorrect API key provided.");
}

function toPrincipal(k: ApiKey): Principal {
  return {
    keyId: k.id,
    tenantId: k.tenant_id,
    scopes: k.scopes,
    tier: k.tier,
    rpm: k.rpm,
    tpm: k.tpm,
    maxConcurrent: k.max_concurrent,
    expiresAt: k.expires_at?.getTime() ?? null,
    models: k.models,
    monthlyTokenBudget: k.monthly_token_budget === null ? null : Number(k.monthly_token_budget),
  };
}

/** The key's model allow-list: a model outside it is, to this key, a model that does not exist (404 model_not_found). */
export function requireModel(p: Principal, requested: string, modelName: string): void {
  if (p.models && !p.models.includes(modelName) && !p.models.includes(requested)) {
    throw new PlatformError("not_found", `The model '${requested}' does not exist or you do not have access to it.`, { param: "model" });
  }
}

export function requireScope(p: Principal, scope: Scope): void {
  if (!p.scopes.includes(scope) && !p.scopes.includes("admin")) {
    throw new PlatformError("permission_denied", `This API key does not have the '${scope}' scope.`);
  }
}
