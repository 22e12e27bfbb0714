/**
 * What an operator reads about one deployment, authorised like the deployment itself
 * (deploy-access.ts): `GET /deploy/{id}/events` (its lifecycle history, a page at a time),
 * `/stats` (the hosted provider's shape, from the usage records), `/replicas` (each
 * replica's phase, node/GPU, since when, heartbeat, load and why it is not ready) and
 * `/logs` (the engine's and agent's log lines, read by the scheduler's runtime driver and
 * streamed; `follow` keeps the response open).
 */
import { cursorPage } from "../list-page.ts";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Redis } from "ioredis";
import type { Kysely } from "kysely";
import { Ajv } from "ajv";
import { PlatformError, type Logger } from "@infera/core";
import type { ObservedDeployment, RedisKeys } from "@infera/contracts";
import { deploymentStats, listDeploymentEventsPage, type DB, type DeploymentEvent } from "@infera/registry";
import type { KeyCache } from "../auth.ts";
import Type from "typebox";
import { DeploymentEventPage, DeploymentParams, DeploymentStats, EventsQuery, LogsQuery, ReplicaList, StatsQuery } from "../deploy-schema.ts";
import { errorResponses } from "../error-schema.ts";
import { errorBody, httpStatusOf, toPlatformError } from "../errors.ts";
import { readLogs, type LogLineEntry } from "../log-stream.ts";
import { replicasOut } from "../replica-view.ts";
import { deployAuth, ownDeployment, principalOf } from "./deploy-access.ts";

export interface DeployObservabilityDeps {
  db: Kysely<DB>;
  keys: KeyCache;
  redis: Redis;
  redisKeys: RedisKeys;
  logger: Logger;
  /** Aborted when the gateway drains: open log streams end. */
  closing: AbortSignal;
  /** Log streams one gateway holds open at once (each holds a Redis connection). */
  maxLogStreams?: number;
}

/** Until the first line, at most this long before a log response commits to 200. */
const LOG_COMMIT_MS = 1_500;

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800, M: 2_592_000 };

/** `1733000000`, `now`, `now-5h` → epoch ms (the provider's time parameters). */
export function parseTime(v: string, now: number): number {
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const m = /^now(?:-(\d+)([smhdwM]))?$/.exec(v);
  if (!m) throw new Error(`not a time: ${v}`);
  return m[1] ? now - Number(m[1]) * UNITS[m[2]!]! * 1000 : now;
}

export function eventOut(e: DeploymentEvent) {
  return {
    id: String(e.id),
    deploy_id: e.deployment_id,
    from_status: e.from_status,
    to_status: e.to_status,
    reason: e.reason,
    created_at: e.created_at.toISOString(),
  };
}

const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

export function registerDeployObservabilityRoutes(app: FastifyInstance, deps: DeployObservabilityDeps): void {
  const { db, redis, redisKeys: rk } = deps;
  const maxLogStreams = deps.maxLogStreams ?? 64;
  let logStreams = 0;

  app.register(async (scope) => {
    // Query strings are strings: these routes' integers and booleans are read from them.
    const ajv = new Ajv({ coerceTypes: true, allErrors: true, useDefaults: false, removeAdditional: false, strict: false });
    scope.setValidatorCompiler(({ schema }) => ajv.compile(schema));
    scope.addHook("onRequest", deployAuth(deps.keys));
    const own = (req: FastifyRequest) => ownDeployment(db, principalOf(req), (req.params as DeploymentParams).id);

    scope.get(
      "/deploy/:id/events",
      {
        schema: {
          tags: ["deploy"],
          summary: "A deployment's lifecycle history, a page at a time",
          params: DeploymentParams,
          querystring: EventsQuery,
          response: { 200: DeploymentEventPage, ...errorResponses },
        },
      },
      async (req) => {
        const d = await own(req);
        const q = req.query as EventsQuery;
        const { events, hasMore } = await listDeploymentEventsPage(db, d.id, { after: q.after, limit: q.limit ?? 20, order: q.order ?? "asc" });
        return cursorPage(events.map(eventOut), hasMore);
      },
    );

    scope.get(
      "/deploy/:id/stats",
      {
        schema: {
          tags: ["deploy"],
          summary: "Requests, tokens, latency and errors over a window (the hosted provider's stats)",
          params: DeploymentParams,
          querystring: StatsQuery,
          response: { 200: DeploymentStats, ...errorResponses },
        },
      },
      async (req) => {
        const d = await own(req);
        const q = req.query as StatsQuery;
        const now = Date.now();
        const from = parseTime(q.from, now);
        const to = parseTime(q.to ?? "now", now);
        if (from >= to)
          throw new PlatformError("invalid_request", `Invalid value for 'from': '${q.from}' is not before 'to' (${q.to ?? "now"}).`, { param: "from" });
        const s = await deploymentStats(db, d.id, new Date(from), new Date(to));
        return {
          requests: s.requests,
          total_time: Math.round(s.totalMs / 1000),
          total_tokens: s.inputTokens + s.outputTokens,
          input_tokens: s.inputTokens,
          output_tokens: s.outputTokens,
          total_amount: Math.round(s.costUsd * 100),
          avg_time: round(s.avgMs),
          avg95_time: round(s.p95Ms),
          errors: s.errors,
          // Beyond the provider's fields: the window, exact cost, more percentiles and time to first token.
          from: Math.floor(from / 1000),
          to: Math.floor(to / 1000),
          cost_usd: s.costUsd,
          p50_time: round(s.p50Ms),
          p99_time: round(s.p99Ms),
          avg_ttft: round(s.avgTtftMs),
          avg95_ttft: round(s.p95TtftMs),
        };
      },
    );

    scope.get(
      "/deploy/:id/replicas",
      {
        schema: {
          tags: ["deploy"],
          summary: "Each replica: phase, node, GPU, since, heartbeat, load and why it is not ready",
          params: DeploymentParams,
          response: { 200: ReplicaList, ...errorResponses },
        },
      },
      async (req) => {
        const d = await own(req);
        const [[, observedJson], [, reports]] = ((await redis.multi().get(rk.runtimeObserved(d.id)).hgetall(rk.replicas(d.id)).exec()) ?? []) as [
          [Error | null, string | null],
          [Error | null, Record<string, string>],
        ];
        let observed: ObservedDeployment | null = null;
        try {
          observed = observedJson ? (JSON.parse(observedJson) as ObservedDeployment) : null;
        } catch {
          observed = null;
        }
        const data = ["stopped", "deleted"].includes(d.status) ? [] : replicasOut(observed, reports ?? {}, Date.now());
        return {
          object: "list",
          deploy_id: d.id,
          status: d.status,
          runtime: observed?.runtime ?? null,
          observed_at: observed ? new Date(observed.at).toISOString() : null,
          data,
        };
      },
    );

    scope.get(
      "/deploy/:id/logs",
      {
        schema: {
          tags: ["deploy"],
          summary: "The engine's and worker agent's log lines (follow: streamed as they are written)",
          params: DeploymentParams,
          querystring: LogsQuery,
          response: {
            200: {
              description: "One line of the log per line of the answer: NDJSON (default) or text (`<replica> <source> <line>`).",
              content: { "application/x-ndjson": { schema: Type.Ref("LogLine") }, "text/plain": { schema: Type.String() } },
            },
            ...errorResponses,
          },
        },
      },
      async (req, reply) => {
        const d = await own(req);
        const q = req.query as LogsQuery;
        if (logStreams >= maxLogStreams) {
          throw new PlatformError("rate_limited", `This gateway has ${maxLogStreams} log streams open; try again later.`, { retryAfterS: 5 });
        }
        logStreams++;
        try {
          await streamLogs(req, reply, d.id, q);
        } finally {
          logStreams--;
        }
      },
    );
  });

  async function streamLogs(req: FastifyRequest, reply: FastifyReply, deploymentId: string, q: LogsQuery): Promise<void> {
    const format = q.format ?? "ndjson";
    const abort = new AbortController();
    const stop = () => abort.abort();
    deps.closing.addEventListener("abort", stop, { once: true });
    reply.raw.once("close", stop);
    const lines = readLogs({ redis, keys: rk }, { deploymentId, replicaId: q.replica, tail: q.tail ?? 100, follow: q.follow ?? false }, abort.signal);
    const write = (l: LogLineEntry) =>
      reply.raw.write(
        format === "text" ? `${l.replicaId} ${l.source} ${l.line}\n` : `${JSON.stringify({ replica_id: l.replicaId, source: l.source, line: l.line })}\n`,
      );
    try {
      // Until the first line (or a short while) nothing is sent, so an error is still a JSON answer with its status.
      let pending = lines.next();
      const first = await Promise.race([pending, new Promise<"wait">((r) => setTimeout(() => r("wait"), LOG_COMMIT_MS))]);
      reply.hijack();
      reply.raw.writeHead(200, {
        "content-type": format === "text" ? "text/plain; charset=utf-8" : "application/x-ndjson",
        "cache-control": "no-store",
        "x-request-id": `req_${req.id}`,
      });
      // A follow with nothing to say yet still answers at once.
      reply.raw.flushHeaders();
      if (first !== "wait") {
        if (first.done) {
          reply.raw.end();
          return;
        }
        write(first.value);
        pending = lines.next();
      }
      try {
        for (;;) {
          const r = await pending;
          if (r.done) break;
          if (!write(r.value))
            await new Promise((resolve) => {
              reply.raw.once("drain", resolve);
              reply.raw.once("close", resolve);
            });
          pending = lines.next();
        }
      } catch (err) {
        // After the first byte: one error line, then the end.
        const e = toPlatformError(err);
        if (!reply.raw.destroyed) reply.raw.write(format === "text" ? `# error: ${e.message}\n` : `${JSON.stringify(errorBody(e))}\n`);
      }
      reply.raw.end();
    } catch (err) {
      if (reply.sent || reply.raw.headersSent) {
        reply.raw.end();
        return;
      }
      const e = toPlatformError(err);
      if (e.retryAfterS !== undefined) reply.header("retry-after", String(e.retryAfterS));
      await reply.code(httpStatusOf(e)).type("application/json").send(errorBody(e));
    } finally {
      deps.closing.removeEventListener("abort", stop);
      abort.abort();
      await lines.return(undefined).catch(() => {});
    }
  }
}
