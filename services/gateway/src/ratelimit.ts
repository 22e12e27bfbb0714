/**
 * Per-key rate limits (requests and tokens per minute, concurrent requests) and the
 * per-tenant concurrency cap per model, enforced in Redis so they hold across every
 * gateway replica.
 *
 * Algorithm: a token bucket per limit. A bucket holds up to the per-minute limit and
 * refills continuously at limit/60 per second, so a key may burst its whole minute and
 * then proceeds at the steady rate; a refused request learns exactly when the next unit
 * frees (`retry-after-ms`), which the official clients honour. Tokens: admission
 * reserves the prompt estimate plus `max_tokens` (× n); when the request ends the
 * difference to the engine's real count is refunded (or charged). Concurrency: a sorted
 * set of open request ids scored by a lease deadline, so a gateway that dies without
 * settling leaks a slot for one lease at most.
 *
 * Cost: admission is ONE script call (EVALSHA, one round trip) that checks revocation, the
 * key's expiry and monthly token budget (from a state hash the admin API rewrites on every
 * change, so a change made on one gateway holds on all at once), all limits and the tenant
 * cap, and commits them only if all pass. The month's count takes each admitted request's
 * reservation and is settled to the real count, so reservations in flight count too. Settling is one more
 * script call after the response has ended, off the latency path; the settles of one event-loop
 * turn go out as one pipeline (one write, not one per request). Redis' own clock
 * (TIME) is used, so gateways' clocks do not matter.
 */
import { readFileSync } from "node:fs";
import type { ChainableCommander, Redis } from "ioredis";
import { PlatformError, type Logger } from "@infera/core";
import type { Principal } from "./auth.ts";

const ADMIT = readFileSync(new URL("./lua/ratelimit-admit.lua", import.meta.url), "utf8");
const SETTLE = readFileSync(new URL("./lua/ratelimit-settle.lua", import.meta.url), "utf8");

type Reply = [number, number, number, number, number, number];

interface LimiterCommands {
  inferaAdmit(...args: (string | number)[]): Promise<Reply>;
}
type SettlePipeline = ChainableCommander & { inferaSettle(...args: (string | number)[]): SettlePipeline };

export interface RateLimiterOptions {
  redis: Redis;
  prefix: string;
  /** Open requests one tenant may have on one deployment; 0 = no cap. */
  tenantModelConcurrency: number;
  /** How long an open request may hold a concurrency slot if its gateway never settles. */
  leaseMs: number;
  logger: Logger;
}

export interface Admission {
  /** Response headers: the `x-ratelimit-*` set for the limits the key has (none when it has none). */
  headers: Record<string, string>;
  /** Gives back what the request did not use; resolves once settled (never rejects: a failure is logged). */
  settle(tokensUsed: number): Promise<void>;
}

const REASONS: Record<number, string> = {
  2: "requests per minute",
  3: "tokens per minute",
  4: "concurrent requests",
};

/** OpenAI's duration style: `20ms`, `1.5s`, `6m0s`. */
export function formatReset(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.ceil(ms))}ms`;
  const s = ms / 1000;
  if (s < 60) return `${Number(s.toFixed(3))}s`;
  const m = Math.floor(s / 60);
  return `${m}m${Number((s - m * 60).toFixed(3))}s`;
}

export class RateLimiter {
  private readonly redis: Redis & LimiterCommands;
  /** Settles waiting for this turn's pipeline, each with what resolves its promise. */
  private settles: { args: (string | number)[]; done: () => void }[] = [];

  constructor(private readonly options: RateLimiterOptions) {
    this.redis = options.redis as Redis & LimiterCommands;
    this.redis.defineCommand("inferaAdmit", { numberOfKeys: 7, lua: ADMIT });
    this.redis.defineCommand("inferaSettle", { numberOfKeys: 4, lua: SETTLE });
  }

  get revokedKeysKey(): string {
    return `${this.options.prefix}:keys:revoked`;
  }

  /** A key's expiry and budget as the admin API last set them (read by the admission script). */
  keyStateKey(keyId: string): string {
    return `${this.options.prefix}:keys:state:${keyId}`;
  }

  /** The key's tokens this calendar month (UTC, by this gateway's clock). */
  budgetKey(keyId: string, at?: Date): string {
    return `${this.options.prefix}:keys:used:${keyId}:${at ? at.toISOString().slice(0, 7) : this.month()}`;
  }

  /** This UTC month as `YYYY-MM`, worked out once a month rather than once a request. */
  private monthName = "";
  private monthEnds = 0;
  private month(): string {
    const now = Date.now();
    if (now >= this.monthEnds) {
      const d = new Date(now);
      this.monthName = d.toISOString().slice(0, 7);
      this.monthEnds = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
    }
    return this.monthName;
  }

  /** Tokens the key used (and holds reserved) this month. */
  async monthUsed(keyId: string): Promise<number> {
    return Number((await this.options.redis.get(this.budgetKey(keyId))) ?? 0);
  }

  private keysOf(p: Principal, deploymentId: string) {
    const k = `${this.options.prefix}:rl:${p.keyId}`;
    return {
      requests: `${k}:req`,
      tokens: `${k}:tok`,
      open: `${k}:open`,
      tenantOpen: `${this.options.prefix}:rl:tenant:${p.tenantId}:${deploymentId}:open`,
      state: this.keyStateKey(p.keyId),
      used: this.budgetKey(p.keyId),
    };
  }

  /**
   * Admits a request or throws: 401 for a key revoked elsewhere, 429 with Retry-After over a
   * limit (the error carries the headers to send). `reserveTokens` is held against tpm until settled.
   */
  async admit(p: Principal, deploymentId: string, requestId: string, reserveTokens: number): Promise<Admission> {
    const rpm = p.rpm ?? 0;
    const tpm = p.tpm ?? 0;
    const maxc = p.maxConcurrent ?? 0;
    const cap = this.options.tenantModelConcurrency;
    const keys = this.keysOf(p, deploymentId);
    const cost = Math.max(0, Math.ceil(reserveTokens));
    let reply: Reply;
    try {
      reply = await this.redis.inferaAdmit(
        this.revokedKeysKey,
        keys.requests,
        keys.tokens,
        keys.open,
        keys.tenantOpen,
        keys.state,
        keys.used,
        p.keyId,
        rpm,
        tpm,
        maxc,
        cap,
        cost,
        requestId,
        this.options.leaseMs,
        p.expiresAt ?? 0,
        p.monthlyTokenBudget ?? 0,
        p.secretHash ?? "",
      );
    } catch (err) {
      throw new PlatformError("unavailable", "Rate limiting is temporarily unavailable; retry.", { cause: err, retryAfterS: 1 });
    }
    const [code, retryMs, reqLeft, reqReset, tokLeft, tokReset] = reply;
    if (code === 1) throw new PlatformError("invalid_api_key", "Incorrect API key provided.");
    if (code === 7) throw new PlatformError("invalid_api_key", "This API key has expired.");
    if (code === 6) {
      throw new PlatformError("insufficient_quota", "You exceeded your current quota: this API key's monthly token budget is spent.", { retryable: false });
    }
    const headers: Record<string, string> = {};
    if (rpm > 0) {
      headers["x-ratelimit-limit-requests"] = String(rpm);
      headers["x-ratelimit-remaining-requests"] = String(Math.max(0, reqLeft));
      headers["x-ratelimit-reset-requests"] = formatReset(reqReset);
    }
    if (tpm > 0) {
      headers["x-ratelimit-limit-tokens"] = String(tpm);
      headers["x-ratelimit-remaining-tokens"] = String(Math.max(0, tokLeft));
      headers["x-ratelimit-reset-tokens"] = formatReset(tokReset);
    }
    if (code !== 0) {
      headers["retry-after-ms"] = String(retryMs);
      headers["retry-after"] = String(Math.max(1, Math.ceil(retryMs / 1000)));
      const what =
        code === 5
          ? `Too many concurrent requests from your organization for this model (limit ${cap}).`
          : code === 3 && cost > tpm
            ? `Request too large: it may use ${cost} tokens, over your limit of ${tpm} tokens per minute. Lower max_tokens.`
            : `Rate limit reached for ${REASONS[code] ?? "requests"}: limit ${code === 2 ? rpm : code === 3 ? tpm : maxc}. Retry after ${formatReset(retryMs)}.`;
      throw new RateLimited(what, headers, Math.max(1, Math.ceil(retryMs / 1000)));
    }
    let settled = false;
    return {
      headers,
      settle: async (tokensUsed: number) => {
        if (settled) return;
        settled = true;
        if (tpm <= 0 && maxc <= 0 && cap <= 0 && cost === tokensUsed) return;
        await new Promise<void>((done) => {
          if (this.settles.push({ args: [keys.tokens, keys.open, keys.tenantOpen, keys.used, tpm, cost - tokensUsed, requestId], done }) === 1)
            setImmediate(() => this.flushSettles());
        });
      },
    };
  }

  private flushSettles(): void {
    const batch = this.settles;
    this.settles = [];
    const pipeline = this.redis.pipeline() as SettlePipeline;
    for (const s of batch) pipeline.inferaSettle(...s.args);
    const warn = (err: unknown) => this.options.logger.warn({ err }, "could not settle a rate-limit reservation");
    pipeline.exec().then(
      (results) => {
        for (const [err] of results ?? []) if (err) warn(err);
        for (const s of batch) s.done();
      },
      (err: unknown) => {
        warn(err);
        for (const s of batch) s.done();
      },
    );
  }
}

/** A 429 that carries the rate-limit headers for the response. */
export class RateLimited extends PlatformError {
  constructor(
    message: string,
    readonly headers: Record<string, string>,
    retryAfterS: number,
  ) {
    super("rate_limited", message, { retryAfterS, retryable: true });
  }
}
