/**
 * `model` string → deployment, cached per tenant. Lifecycle changes arrive on the
 * registry channel and drop the cache; while Postgres is down, cached answers stand.
 */
import type { Kysely } from "kysely";
import { PlatformError } from "@infera/core";
import { resolveModel, type DB, type ResolvedModel } from "@infera/registry";
import { inputRefused, refusedByPostgres } from "./errors.ts";

interface Entry {
  model: ResolvedModel;
  at: number;
}

export class ModelResolver {
  private readonly cache = new Map<string, Entry>();

  constructor(
    private readonly db: Kysely<DB>,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  async resolve(tenantId: string, model: string): Promise<ResolvedModel> {
    const key = `${tenantId}\u0000${model}`;
    const hit = this.cache.get(key);
    if (hit && this.now() - hit.at < this.ttlMs) return hit.model;
    let res: Awaited<ReturnType<typeof resolveModel>>;
    try {
      res = await resolveModel(this.db, tenantId, model);
    } catch (err) {
      if (refusedByPostgres(err)) throw inputRefused(err, "model");
      if (hit) return hit.model;
      throw new PlatformError("unavailable", "Model lookup is temporarily unavailable.", { cause: err, retryAfterS: 1 });
    }
    if (!res.ok) {
      const messages = {
        unknown_model: `The model '${model}' does not exist or you do not have access to it.`,
        unknown_version: `The model '${model.slice(0, model.lastIndexOf(":"))}' has no version '${model.slice(model.lastIndexOf(":") + 1)}'.`,
        no_deployment: `The model '${model}' has no deployment.`,
        deleted: `The model '${model}' does not exist or you do not have access to it.`,
      } as const;
      throw new PlatformError("not_found", messages[res.reason], { param: "model" });
    }
    this.cache.set(key, { model: res.model, at: this.now() });
    if (this.cache.size > 50_000) this.cache.delete(this.cache.keys().next().value!);
    return res.model;
  }

  invalidate(): void {
    this.cache.clear();
  }
}

/** A request for a deployment that cannot serve now: stopped is a 503 that says so. */
export function assertServable(m: ResolvedModel, model: string): void {
  if (m.status === "stopped") throw new PlatformError("unavailable", `The deployment serving '${model}' is stopped.`, { retryAfterS: 30 });
  if (m.status === "failed") throw new PlatformError("unavailable", `The deployment serving '${model}' has failed.`, { retryAfterS: 60 });
}
