/**
 * `GET /v1/usage?from=&to=&group_by=model|day|key[&tenant_id=]`: a tenant's own usage,
 * for a key of any scope. Admin keys may name another tenant; any other key naming a
 * tenant not its own gets the same 404 as an unknown one (existence is not confirmed).
 * `from`/`to` are unix seconds or ISO 8601 dates; `to` defaults to now and `from` to 30
 * days before it; the window is [from, to).
 */
import type { FastifyInstance } from "fastify";
import type { Kysely } from "kysely";
import { PlatformError } from "@infera/core";
import { getTenant, summarizeUsage, type DB, type UsageGroupBy } from "@infera/registry";
import type { KeyCache } from "../auth.ts";
import { UsageQuery, UsageReport } from "../admin-schema.ts";
import { errorResponses } from "../error-schema.ts";

export interface UsageRouteDeps {
  db: Kysely<DB>;
  keys: KeyCache;
}

const GROUPS: readonly UsageGroupBy[] = ["model", "day", "key"];
const PARAMS = new Set(["from", "to", "group_by", "tenant_id"]);
const DAY_MS = 86_400_000;

function timeParam(v: unknown, param: string): Date | undefined {
  if (v === undefined || v === "") return undefined;
  if (typeof v !== "string") throw new PlatformError("invalid_request", `'${param}' must be given once.`, { param });
  const d = /^\d{1,11}$/.test(v) ? new Date(Number(v) * 1000) : /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(v) ? new Date(v) : undefined;
  if (!d || Number.isNaN(d.getTime())) {
    throw new PlatformError("invalid_request", `Invalid value for '${param}': '${v.slice(0, 40)}'. Use unix seconds or an ISO 8601 date.`, { param });
  }
  return d;
}

export function registerUsageRoutes(app: FastifyInstance, deps: UsageRouteDeps, prefix = "/v1"): void {
  // The query is checked by hand below (messages naming the parameter); the schema documents it.
  app.get(
    `${prefix}/usage`,
    {
      schema: {
        tags: ["usage"],
        summary: "A tenant's usage: requests, tokens, images and cost per model, day or key",
        querystring: UsageQuery,
        response: { 200: UsageReport, ...errorResponses },
      },
    },
    async (req) => {
      const p = await deps.keys.authenticate(req.headers.authorization);
      const q = req.query as Record<string, unknown>;
      for (const k of Object.keys(q)) if (!PARAMS.has(k)) throw new PlatformError("invalid_request", `Unrecognized query parameter: ${k}`, { param: k });
      const groupBy = (q.group_by ?? "model") as UsageGroupBy;
      if (!GROUPS.includes(groupBy)) {
        throw new PlatformError(
          "invalid_request",
          `Invalid value for 'group_by': ${JSON.stringify(q.group_by)}. Supported values are: 'model', 'day', 'key'.`,
          {
            param: "group_by",
          },
        );
      }
      const to = timeParam(q.to, "to") ?? new Date();
      const from = timeParam(q.from, "from") ?? new Date(to.getTime() - 30 * DAY_MS);
      if (from.getTime() >= to.getTime()) throw new PlatformError("invalid_request", "'from' must be before 'to'.", { param: "from" });

      let tenantId = p.tenantId;
      if (q.tenant_id !== undefined) {
        if (typeof q.tenant_id !== "string" || q.tenant_id === "")
          throw new PlatformError("invalid_request", "tenant_id must be one tenant id.", { param: "tenant_id" });
        const admin = p.scopes.includes("admin");
        if ((!admin && q.tenant_id !== p.tenantId) || !(await getTenant(deps.db, q.tenant_id))) {
          throw new PlatformError("not_found", `The tenant '${q.tenant_id}' does not exist or you do not have access to it.`, { param: "tenant_id" });
        }
        tenantId = q.tenant_id;
      }

      const rows = await summarizeUsage(deps.db, { tenantId, from, to, groupBy });
      const field = groupBy === "key" ? "key_id" : groupBy;
      const total = { requests: 0, prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, images: 0, cost_usd: 0 };
      const data = rows.map((r) => {
        const row = {
          [field]: r.group,
          requests: Number(r.requests),
          prompt_tokens: Number(r.prompt_tokens),
          completion_tokens: Number(r.completion_tokens),
          total_tokens: Number(r.prompt_tokens) + Number(r.completion_tokens),
          images: Number(r.images),
          cost_usd: Number(r.cost_usd),
        };
        total.requests += row.requests;
        total.prompt_tokens += row.prompt_tokens;
        total.completion_tokens += row.completion_tokens;
        total.total_tokens += row.total_tokens;
        total.images += row.images;
        total.cost_usd += row.cost_usd;
        return row;
      });
      total.cost_usd = Math.round(total.cost_usd * 1e9) / 1e9;
      return { object: "list", tenant_id: tenantId, from: from.toISOString(), to: to.toISOString(), group_by: groupBy, data, total };
    },
  );
}
