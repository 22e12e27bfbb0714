/**
 * The audit trail: every admin and deploy action — who (key id and tenant), what (action,
 * target, the request less its secrets), when, and the answer — appended to Postgres
 * before the answer leaves. Recorded: what was done (2xx) and what scope or policy refused
 * (403); requests refused as malformed or for a missing object change nothing and are not
 * actions. Admins read it at `GET /admin/audit` (filters, newest first, cursor pages).
 */
import { cursorPage } from "./list-page.ts";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Kysely } from "kysely";
import Type, { type Static } from "typebox";
import { PlatformError, type Logger } from "@infera/core";
import { listAudit, recordAudit, type AuditEvent, type DB } from "@infera/registry";
import type { KeyCache, Principal } from "./auth.ts";
import { errorResponses } from "./error-schema.ts";
import { scopeAuth } from "./routes/deploy-access.ts";

/** Route → action name; a mutating admin or deploy route not listed is recorded as `METHOD /route`. */
const ACTIONS: Record<string, string> = {
  "POST /admin/tenants": "tenant.create",
  "POST /admin/api-keys": "api_key.create",
  "PATCH /admin/api-keys/:id": "api_key.update",
  "POST /admin/api-keys/:id/rotate": "api_key.rotate",
  "DELETE /admin/api-keys/:id": "api_key.revoke",
  "POST /admin/engine-profiles": "engine_profile.create",
  "PUT /admin/engine-profiles/:name": "engine_profile.replace",
  "DELETE /admin/engine-profiles/:name": "engine_profile.delete",
  "PUT /admin/tenants/:id/deploy-grant": "deploy_grant.put",
  "POST /deploy/llm": "deployment.create",
  "PUT /deploy/:id": "deployment.update",
  "DELETE /deploy/:id": "deployment.delete",
  "POST /deploy/:id/stop": "deployment.stop",
  "POST /deploy/:id/start": "deployment.start",
};

const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const SECRET_FIELDS = new Set(["token", "secret", "hf_token", "password"]);
const MAX_DETAILS = 8192;

/** A copy without secret-named fields' values. */
function redact(v: unknown, depth = 0): unknown {
  if (depth > 8) return "[deep]";
  if (Array.isArray(v)) return v.map((x) => redact(x, depth + 1));
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, SECRET_FIELDS.has(k) ? "[redacted]" : redact(x, depth + 1)]));
  }
  return v;
}

function detailsOf(req: FastifyRequest): string | null {
  const d: Record<string, unknown> = {};
  if (req.body !== undefined && req.body !== null) d.body = redact(req.body);
  const q = req.query as Record<string, unknown> | undefined;
  if (q && Object.keys(q).length > 0) d.query = q;
  if (Object.keys(d).length === 0) return null;
  const json = JSON.stringify(d);
  return json.length > MAX_DETAILS ? JSON.stringify({ truncated: true, bytes: json.length }) : json;
}

function answerOf(payload: unknown): Record<string, unknown> | undefined {
  if (typeof payload !== "string" || payload.length > 1_000_000) return undefined;
  try {
    const v = JSON.parse(payload) as unknown;
    return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const str = (v: unknown) => (typeof v === "string" && v.length > 0 ? v.slice(0, 200) : undefined);

/** The onSend hook (root): records the action before the answer leaves; a failed write is logged, the answer stands. */
export function auditHook(db: Kysely<DB>, logger: Logger) {
  return async (req: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> => {
    const route = req.routeOptions.url ?? "";
    if (!MUTATING.has(req.method) || !(route.startsWith("/admin/") || route.startsWith("/deploy/"))) return payload;
    const p = (req as FastifyRequest & { principal?: Principal }).principal;
    const status = reply.statusCode;
    if (!p || !(status < 400 || status === 403)) return payload;
    const params = (req.params ?? {}) as Record<string, unknown>;
    const body = (req.body ?? {}) as Record<string, unknown>;
    const answer = status < 400 ? answerOf(payload) : undefined;
    const action = ACTIONS[`${req.method} ${route}`] ?? `${req.method} ${route}`;
    const admin = p.scopes.includes("admin");
    const tenantId =
      route.startsWith("/deploy/") || !admin
        ? p.tenantId
        : (str(body.tenant_id) ??
          (route.startsWith("/admin/tenants/:id") ? str(params.id) : undefined) ??
          str(answer?.tenant_id) ??
          (action === "tenant.create" ? str(answer?.id) : undefined));
    try {
      await recordAudit(db, {
        actor_key_id: p.keyId,
        actor_tenant_id: p.tenantId,
        action,
        method: req.method,
        path: req.url.split("?")[0]!.slice(0, 500),
        status,
        outcome: status < 400 ? "ok" : "denied",
        target_id: str(params.id) ?? str(params.name) ?? str(answer?.deploy_id) ?? str(answer?.id) ?? str(answer?.name) ?? null,
        tenant_id: tenantId ?? null,
        request_id: req.id,
        details: detailsOf(req),
      });
    } catch (err) {
      logger.error({ err, action, keyId: p.keyId }, "could not record an audit event");
    }
    return payload;
  };
}

export const AuditQuery = Type.Object(
  {
    actor_key_id: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    tenant_id: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: "The tenant the action concerns." })),
    action: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: "`deployment.create`, `api_key.rotate`, …" })),
    target_id: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    outcome: Type.Optional(Type.Enum(["ok", "denied"])),
    since: Type.Optional(Type.String({ pattern: "^[0-9]{1,11}$", description: "Unix seconds (inclusive)." })),
    until: Type.Optional(Type.String({ pattern: "^[0-9]{1,11}$", description: "Unix seconds (exclusive)." })),
    after: Type.Optional(Type.String({ pattern: "^[0-9]{1,19}$", description: "The previous page's last_id: the page of older events." })),
    limit: Type.Optional(Type.String({ pattern: "^[0-9]{1,3}$", description: "1 to 100; default 20." })),
  },
  { additionalProperties: false },
);
type AuditQuery = Static<typeof AuditQuery>;

const OrNull = <T extends Type.TSchema>(t: T) => Type.Union([t, Type.Null()]);

export const AuditEventOut = Type.Object(
  {
    object: Type.Literal("audit_event"),
    id: Type.String(),
    at: Type.Integer({ description: "Unix seconds." }),
    actor_key_id: Type.String(),
    actor_tenant_id: Type.String(),
    action: Type.String(),
    method: Type.String(),
    path: Type.String(),
    status: Type.Integer(),
    outcome: Type.Enum(["ok", "denied"]),
    target_id: OrNull(Type.String()),
    tenant_id: OrNull(Type.String()),
    request_id: Type.String(),
    details: OrNull(Type.Object({}, { additionalProperties: true, description: "The request's body and query, secrets redacted." })),
  },
  { $id: "AuditEvent" },
);

export const AuditPage = Type.Object(
  {
    object: Type.Literal("list"),
    data: Type.Array(Type.Ref("AuditEvent")),
    first_id: OrNull(Type.String()),
    last_id: OrNull(Type.String()),
    has_more: Type.Boolean(),
  },
  { $id: "AuditPage" },
);

function eventOut(e: AuditEvent) {
  return {
    object: "audit_event" as const,
    id: String(e.id),
    at: Math.floor(e.at.getTime() / 1000),
    actor_key_id: e.actor_key_id,
    actor_tenant_id: e.actor_tenant_id,
    action: e.action,
    method: e.method,
    path: e.path,
    status: e.status,
    outcome: e.outcome,
    target_id: e.target_id,
    tenant_id: e.tenant_id,
    request_id: e.request_id,
    details: e.details,
  };
}

const fromUnix = (s: string | undefined) => (s === undefined ? undefined : new Date(Number(s) * 1000));

export function registerAuditRoutes(app: FastifyInstance, deps: { db: Kysely<DB>; keys: KeyCache }): void {
  app.register(async (scope) => {
    scope.addHook("onRequest", scopeAuth(deps.keys, "admin"));
    scope.get(
      "/admin/audit",
      {
        schema: {
          tags: ["admin"],
          summary: "The audit trail: admin and deploy actions, newest first",
          querystring: AuditQuery,
          response: { 200: AuditPage, ...errorResponses },
        },
      },
      async (req) => {
        const q = req.query as AuditQuery;
        const limit = q.limit === undefined ? 20 : Number(q.limit);
        if (limit < 1 || limit > 100) throw new PlatformError("invalid_request", "Invalid value for 'limit': it must be 1 to 100.", { param: "limit" });
        const since = fromUnix(q.since);
        const until = fromUnix(q.until);
        if (since && until && since >= until)
          throw new PlatformError("invalid_request", "Invalid value for 'since': it is not before 'until'.", { param: "since" });
        const { events, hasMore } = await listAudit(deps.db, {
          actorKeyId: q.actor_key_id,
          tenantId: q.tenant_id,
          action: q.action,
          targetId: q.target_id,
          outcome: q.outcome as "ok" | "denied" | undefined,
          since,
          until,
          before: q.after,
          limit,
        });
        return cursorPage(events.map(eventOut), hasMore);
      },
    );
  });
}
