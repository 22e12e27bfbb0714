/**
 * Wires one gateway process: Fastify with the tenant API (OpenAI-compatible), health
 * and metrics; the key cache and model resolver over Postgres; the queue dispatch
 * and reply channel over Redis; gRPC clients to agents; the usage recorder.
 */
import type { ServerResponse } from "node:http";
import { readFileSync } from "node:fs";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { Redis } from "ioredis";
import type { Kysely } from "kysely";
import { sql } from "kysely";
import { lazyChild, type Logger, PlatformError, type Stoppable, stopInOrder } from "@infera/core";
import { gpuTypesFrom, redisKeys } from "@infera/contracts";
import { startTracing } from "@infera/telemetry";
import { createBlobStore } from "@infera/storage";
import { assertRedisAccess, QueueClient, queueKeys } from "@infera/queue";
import {
  createApiKey,
  createDb,
  ensureTenant,
  findKeyByHash,
  getDeployment,
  hashSecret,
  listDeployments,
  liveTokenizers,
  secretsKeyFrom,
  seedEngineProfiles,
  type DB,
} from "@infera/registry";
import { AgentClients } from "./agents.ts";
import { KeyCache, RedisRevocations } from "./auth.ts";
import type { GatewayConfig } from "./config.ts";
import { errorBody, httpStatusOf, toPlatformError } from "./errors.ts";
import type { InferenceDeps } from "./inference.ts";
import { createGatewayMetrics, registerBatchPacingMetrics } from "./metrics.ts";
import { ModelResolver } from "./resolver.ts";
import { Tokenizers } from "./prompt-tokens.ts";
import { registerOpenAIRoutes } from "./routes/openai.ts";
import { registerAdminRoutes } from "./routes/admin.ts";
import { registerAdminPolicyRoutes } from "./routes/admin-policy.ts";
import { auditHook, registerAuditRoutes } from "./audit.ts";
import { registerUsageRoutes } from "./routes/usage.ts";
import { RateLimiter } from "./ratelimit.ts";
import { registerDeployRoutes } from "./routes/deploy.ts";
import { registerDeployObservabilityRoutes } from "./routes/deploy-observability.ts";
import { registerConsole } from "./console.ts";
import { registerOpenApi } from "./openapi.ts";
import gatewayPackage from "../package.json" with { type: "json" };
import { UsageRecorder } from "./usage.ts";
import { JobQueues } from "@infera/jobs";
import { startBatchRunner } from "./batch-runner.ts";
import { BatchPacer, eventLoopLateness } from "./batch-pacing.ts";
import { AccessLog } from "./access-log.ts";
import { validationError, type SchemaError } from "./validation.ts";
import { clientRequestId, newRequestId } from "./request-id.ts";
import { badTextError, checkParams, findBadString, MAX_PARAM_CHARS, scanJson, tooDeepError } from "./edge-input.ts";

/** A body declared up to this many times the limit is drained after its 413 rather than cut off. */
const OVERSIZE_DRAIN_FACTOR = 4;

export interface RunningGateway {
  app: FastifyInstance;
  port: number;
  /** What stops, in order (for main.ts's shutdown helper): not ready → stop accepting → finish open requests → flush usage → close. */
  stoppers: readonly Stoppable[];
  /** All of `stoppers`, in order. */
  stop(): Promise<void>;
}

export interface GatewayOptions {
  /** /readyz waits until every catalog deployment serves (local mode). */
  readyRequiresCatalog?: boolean;
}

export async function startGateway(config: GatewayConfig, logger: Logger, options: GatewayOptions = {}): Promise<RunningGateway> {
  const keys = redisKeys(config.redisPrefix);
  const metrics = createGatewayMetrics();
  const tracing = await startTracing(config.tracing, logger);
  const db: Kysely<DB> = createDb(config.databaseUrl, { max: 20 });
  await assertRedisAccess(config.redisUrl);
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 2 });
  // Connected before it subscribes: ioredis' ready check (INFO) must not race the SUBSCRIBE.
  const sub = new Redis(config.redisUrl, { maxRetriesPerRequest: null, lazyConnect: true });
  // Queue entries wait for Redis to come back (never past the request's deadline); commands
  // issued in the same tick go out as one write.
  const queueConn = new Redis(config.redisUrl, { maxRetriesPerRequest: null, enableAutoPipelining: true });
  for (const [name, r] of [
    ["commands", redis],
    ["subscriber", sub],
    ["queue", queueConn],
  ] as const)
    r.on("error", (err) => logger.warn({ err, connection: name }, "redis error"));

  if (config.bootstrapAdminKey) await bootstrapAdmin(db, config.bootstrapAdminKey);
  // The operator's engine profiles (Helm values): what they say is what the registry holds.
  await seedEngineProfiles(db, config.deployPolicy.profiles);

  const limiter = new RateLimiter({
    redis,
    prefix: config.redisPrefix,
    tenantModelConcurrency: config.tenantModelConcurrency,
    leaseMs: config.rateLimitLeaseMs,
    logger: logger.child({ component: "ratelimit" }),
  });
  const revocations = new RedisRevocations(redis, limiter.revokedKeysKey, `${config.redisPrefix}:keys`, (id) => limiter.keyStateKey(id));
  const keyCache = new KeyCache(db, config.cacheTtlMs, Date.now, revocations);
  const resolver = new ModelResolver(db, config.cacheTtlMs);
  // The catalog's tokenizers load before the gateway listens (each takes a moment of CPU); others on first use.
  const tokenizers = new Tokenizers({ logger: logger.child({ component: "tokenizers" }) });
  await tokenizers.preload(await liveTokenizers(db).catch(() => []));
  const queue = new QueueClient({
    redis,
    queueConnection: queueConn,
    keys: queueKeys(config.redisPrefix),
    gatewayId: config.gatewayId,
    metrics,
    logger,
    queueMax: config.queueMaxPerDeployment,
    fastPath: config.fastPath,
  });
  queue.start();
  if (!config.agentAuthToken) logger.warn("AGENT_AUTH_TOKEN is not set: worker agents will refuse this gateway's calls");
  const t = config.agentTls;
  const agents = new AgentClients(
    config.agentAuthToken,
    t && {
      ca: readFileSync(t.caFile),
      serverName: t.serverName,
      cert: t.certFile ? readFileSync(t.certFile) : undefined,
      key: t.keyFile ? readFileSync(t.keyFile) : undefined,
    },
  );
  const usage = new UsageRecorder(db, logger.child({ component: "usage" }), metrics, { intervalMs: config.usageFlushMs, maxBatch: 500, maxHeld: 1_000_000 });
  usage.start();

  const keysChannel = `${config.redisPrefix}:keys`;
  await sub.connect();
  await sub.subscribe(queue.replyChannel, keys.registryChannel, keysChannel);
  sub.on("message", (channel, message) => {
    if (channel === keys.registryChannel) resolver.invalidate();
    else if (channel === keysChannel) keyCache.revoke(message);
    else queue.deliver(message);
  });

  /** Aborted when a stopping gateway's grace is over (the "http" stopper below). */
  const graceOver = new AbortController();
  const deps: InferenceDeps = {
    queue,
    agents,
    usage,
    metrics,
    logger,
    gatewayId: config.gatewayId,
    queueWaitMs: config.queueWaitMs,
    maxAttempts: config.maxAttempts,
    limiter,
    agentIdleTimeoutMs: config.agentIdleTimeoutMs,
    agentCallTimeoutMs: config.agentCallTimeoutMs,
    tracing,
    accessLog: new AccessLog({ logger, sample: config.accessLogSample }),
    stopping: graceOver.signal,
  };

  const app = Fastify({
    loggerInstance: logger.child({ component: "http" }) as unknown as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    // Fastify makes every request a child logger (its reqId bound); made only if it logs (no route sets a log level).
    childLoggerFactory: (logger, bindings) => lazyChild(logger as unknown as Logger, bindings) as unknown as FastifyBaseLogger,
    bodyLimit: config.bodyLimitBytes,
    trustProxy: true,
    // The platform's own id for every request; a client's X-Request-Id is never taken as it.
    genReqId: newRequestId,
    requestIdHeader: false,
    return503OnClosing: true,
    // A client must send its whole request within this (slow-loris bodies are cut off with a 408);
    // Node checks at connectionsCheckingInterval, so keep that a fraction of it.
    requestTimeout: config.requestTimeoutMs,
    http: {
      headersTimeout: Math.min(60_000, config.requestTimeoutMs),
      connectionsCheckingInterval: Math.max(100, Math.min(5_000, Math.floor(config.requestTimeoutMs / 4))),
    },
    // Errors Node's HTTP parser answers before any route (a request too slow, headers too
    // large, bytes that are not HTTP) get OpenAI's error JSON too.
    clientErrorHandler: (err: NodeJS.ErrnoException, socket) => {
      if (err.code === "ECONNRESET" || socket.destroyed) return;
      const [status, text, message] =
        err.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? [408, "Request Timeout", "The request was not received in time."]
          : err.code === "HPE_HEADER_OVERFLOW"
            ? [431, "Request Header Fields Too Large", "The request headers are larger than this server accepts."]
            : [400, "Bad Request", "The request is not valid HTTP."];
      const body = JSON.stringify({ error: { message, type: "invalid_request_error", param: null, code: null } });
      if (socket.writable)
        socket.write(
          `HTTP/1.1 ${status} ${text}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`,
        );
      socket.destroy(err);
    },
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: true, useDefaults: false } },
    // What the router refuses on its own (a bad percent-encoding, a path parameter past the
    // limit) leaves in the platform's error JSON too.
    maxParamLength: MAX_PARAM_CHARS,
    frameworkErrors: (err, _req, reply) => {
      const e =
        err.code === "FST_ERR_MAX_PARAM_LENGTH"
          ? new PlatformError("uri_too_long", `A path parameter is longer than ${MAX_PARAM_CHARS} characters.`)
          : new PlatformError("invalid_request", "The request URL is not valid (a bad percent-encoding).");
      metrics.errors.inc({ code: e.code });
      (reply as FastifyReply).code(httpStatusOf(e)).type("application/json").send(errorBody(e));
    },
  });

  // JSON bodies: Fastify's own parser (prototype-poisoning safe), except that an empty body is
  // no body — clients that send `content-type: application/json` on every request reach
  // body-less routes; a route that needs a body refuses the missing one by its schema.
  const parseJson = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) => {
    const text = typeof body === "string" ? body : body.toString("utf8");
    if (text.trim() === "") return done(null, undefined);
    // One bound on depth for every route, found before anything parses or recurses into the body.
    const scan = scanJson(text);
    if (scan === "too_deep") return done(tooDeepError(), undefined);
    parseJson(req, text, (err: Error | null, value?: unknown) => {
      if (err) return done(err, undefined);
      const bad = scan === "check_strings" ? findBadString(value) : undefined;
      if (bad !== undefined) return done(badTextError(bad), undefined);
      done(null, value);
    });
  });
  // Path parameters and query values: no NUL, no unpaired surrogate, bounded length (they reach
  // Postgres lookups, Redis keys and Kubernetes names).
  // Callback-style (as the per-request hooks below): no promise and microtask per request.
  app.addHook("preValidation", (req, _reply, done) => {
    try {
      checkParams(req.params);
      checkParams(req.query);
    } catch (err) {
      done(err as Error);
      return;
    }
    done();
  });

  app.setErrorHandler((err, req, reply) => {
    const v = err as { validation?: SchemaError[]; validationContext?: string };
    // The part that failed: a query string's or path's errors are about it, not the body.
    const part = v.validationContext === "querystring" ? req.query : v.validationContext === "params" ? req.params : req.body;
    let e: PlatformError;
    try {
      e = v.validation ? validationError(v.validation, part) : toPlatformError(err);
    } catch (inner) {
      // Describing the error failed (it never should: bodies are bounded): still OpenAI's shape.
      e = new PlatformError("internal", "The server had an error while processing your request.", { cause: inner });
    }
    if (e.code === "internal") logger.error({ err }, "unhandled error");
    // For the access line of a request refused before the pipeline (routes/openai.ts).
    (req as FastifyRequest & { errorCode?: string }).errorCode = e.code;
    metrics.errors.inc({ code: e.code });
    if (e.retryAfterS !== undefined) reply.header("retry-after", String(e.retryAfterS));
    // Fastify closes the connection after a body it refused, while a client that declared a
    // body over the limit is still writing it: its write fails (EPIPE) before it reads the 413.
    // A declared body up to a few times the limit is read and discarded instead (Node drains an
    // unread request body), so the client gets the answer and keeps its connection.
    if (e.code === "payload_too_large" && Number(req.headers["content-length"]) <= config.bodyLimitBytes * OVERSIZE_DRAIN_FACTOR) {
      reply.removeHeader("connection");
    }
    reply.code(httpStatusOf(e)).type("application/json").send(errorBody(e));
  });
  app.setNotFoundHandler((req, reply) => {
    const e = new PlatformError("not_found", `Unknown request URL: ${req.method} ${req.url.split("?")[0]}.`);
    reply.code(404).send(errorBody(e, "unknown_url"));
  });

  // Before any route: the document collects every route as it is registered.
  await registerOpenApi(app, gatewayPackage.version);

  let draining = false;
  /** Aborted when the drain starts: responses that would stay open (log follows) end. */
  const closing = new AbortController();
  let catalogReadyAt = 0;
  const Status = { type: "object", properties: { status: { type: "string" } }, required: ["status"] };
  app.get("/healthz", { schema: { tags: ["ops"], summary: "Liveness", security: [], response: { 200: Status } } }, async () => ({ status: "ok" }));
  app.get(
    "/readyz",
    {
      schema: {
        tags: ["ops"],
        summary: "Readiness: Postgres and Redis answer (local mode: and the catalog serves)",
        security: [],
        response: {
          200: Status,
          503: { ...Status, properties: { status: { type: "string" }, waiting: { type: "array", items: { type: "string" } }, reason: { type: "string" } } },
        },
      },
    },
    async (_req, reply) => {
      if (draining) return reply.code(503).send({ status: "draining" });
      try {
        await sql`select 1`.execute(db);
        await redis.ping();
        if (options.readyRequiresCatalog && Date.now() - catalogReadyAt > 1000) {
          const catalog = (await listDeployments(db, { tenantId: null })).filter((d) => d.status !== "deleted");
          const waiting = catalog.filter((d) => d.status !== "running").map((d) => `${d.model_name}: ${d.status}`);
          if (catalog.length === 0 || waiting.length > 0) return reply.code(503).send({ status: "starting", waiting });
          catalogReadyAt = Date.now();
        }
        return { status: "ready" };
      } catch (err) {
        return reply.code(503).send({ status: "unavailable", reason: (err as Error).message });
      }
    },
  );
  app.get(
    "/metrics",
    {
      schema: {
        tags: ["ops"],
        summary: "Prometheus metrics",
        security: [],
        response: { 200: { description: "Prometheus text exposition", content: { "text/plain": { schema: { type: "string" } } } } },
      },
    },
    async (_req, reply) => {
      reply.type(metrics.registry.contentType);
      return metrics.registry.metrics();
    },
  );

  const blobs = createBlobStore(config.storage);
  // A line of a batch file is one request: the request body limit bounds it.
  const files = { maxBytes: config.filesMaxBytes, maxLines: config.filesMaxLines, maxLineBytes: config.bodyLimitBytes };
  const jobsConnection = { redisUrl: config.redisUrl, prefix: config.redisPrefix };
  const jobs = new JobQueues(jobsConnection, logger.child({ component: "jobs" }));
  for (const prefix of ["/v1/openai", "/v1"])
    registerOpenAIRoutes(
      app,
      { db, keys: keyCache, resolver, tokenizers, blobs, files, jobs, prefix, responsesRetentionDays: config.responsesRetentionDays },
      deps,
    );
  // Batch lines: this gateway runs its share, paced by the spare capacity the heartbeats show.
  const capacities = new Map<string, { n: number; at: number }>();
  // And by how late this process's timers run: the CPU the interactive requests need (issue #19).
  const lateness = config.batchBackoffLatenessMs > 0 ? eventLoopLateness() : undefined;
  const pacer = new BatchPacer({
    redis,
    keys,
    reserveFraction: config.batchReserveFraction,
    max: config.batchMaxInflight,
    load: lateness && { signal: lateness, thresholdMs: config.batchBackoffLatenessMs, intervalMs: config.batchBackoffIntervalMs },
    capacityOf: async (id) => {
      const c = capacities.get(id);
      if (c && Date.now() - c.at < 30_000) return c.n;
      const n = (await getDeployment(db, id))?.config.max_batch_size ?? 1;
      // Deployments not asked about for a while (deleted, their batches over) are dropped.
      for (const [k, v] of capacities) if (Date.now() - v.at > 300_000) capacities.delete(k);
      capacities.set(id, { n, at: Date.now() });
      return n;
    },
  });
  registerBatchPacingMetrics(metrics.registry, () => pacer.deployments());
  const batchRunner = startBatchRunner({
    db,
    blobs,
    keys: keyCache,
    ctx: { resolver, tokenizers },
    inference: deps,
    pacer,
    jobs,
    connection: jobsConnection,
    logger,
    concurrency: config.batchWorkerConcurrency,
  });
  registerAdminRoutes(app, { db, keys: keyCache, revocations, logger: logger.child({ component: "admin-api" }) });
  registerAdminPolicyRoutes(app, { db, keys: keyCache, defaultGpuQuota: config.deployPolicy.tenantGpuQuota, logger: logger.child({ component: "admin-api" }) });
  registerAuditRoutes(app, { db, keys: keyCache });
  registerUsageRoutes(app, { db, keys: keyCache });
  registerDeployRoutes(app, {
    db,
    keys: keyCache,
    redis,
    redisKeys: keys,
    gpuTypes: await gpuTypesFrom(config.gpuTypes),
    secretsKey: config.secretsKey ? secretsKeyFrom(config.secretsKey) : undefined,
    defaultGpuQuota: config.deployPolicy.tenantGpuQuota,
    logger: logger.child({ component: "deploy-api" }),
  });
  await registerConsole(app, config.consoleDir);
  registerDeployObservabilityRoutes(app, {
    db,
    keys: keyCache,
    redis,
    redisKeys: keys,
    logger: logger.child({ component: "deploy-api" }),
    closing: closing.signal,
  });

  // Keep track of open (hijacked too) responses so a drain can wait for them; refuse new ones while draining.
  const open = new Set<ServerResponse>();
  function closed(this: ServerResponse): void {
    open.delete(this);
  }
  app.addHook("onRequest", (_req, reply, done) => {
    open.add(reply.raw);
    reply.raw.once("close", closed);
    if (!draining) return done();
    reply.header("connection", "close");
    const e = new PlatformError("unavailable", "This gateway is shutting down; retry.", { retryAfterS: 1 });
    reply.header("retry-after", "1").code(503).send(errorBody(e));
  });
  // Every admin and deploy action, before its answer leaves.
  app.addHook("onSend", auditHook(db, logger.child({ component: "audit" })));
  app.addHook("onSend", async (req, reply, payload) => {
    if (!reply.hasHeader("x-request-id")) reply.header("x-request-id", req.id);
    const client = clientRequestId(req);
    if (client !== undefined && !reply.hasHeader("x-client-request-id")) reply.header("x-client-request-id", client);
    return payload;
  });

  // A deep accept queue (the kernel caps it at net.core.somaxconn, 4096 since Linux 5.4; Go's
  // servers take that cap too): thousands of clients connecting while the event loop is busy
  // otherwise overflow Node's 511 and the kernel drops or resets their connections.
  await app.listen({ port: config.port, host: config.host, backlog: 4096 });
  const addr = app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : config.port;
  logger.info({ port, gatewayId: config.gatewayId }, "gateway listening");

  // The stop order: not ready and no new connections → drain open requests → the queue (waiting
  // requests answered, releases sent) → usage flushed → gRPC channels → Redis → the pool.
  let deadline = 0;
  const stoppers: Stoppable[] = [
    // Batch lines in flight are given up on first (another gateway runs them again), then no new chunk is taken.
    batchRunner,
    {
      name: "http",
      stop: async () => {
        draining = true;
        closing.abort();
        deadline = Date.now() + config.shutdownGraceMs;
        // Stop accepting new connections; finish the requests in flight.
        app.server.close();
        const settle = async (until: number) => {
          while (open.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
        };
        await settle(deadline);
        if (open.size > 0) {
          // Past the grace, calls still running end with an error the client can retry on (a
          // stream gets it as its last event), what reached each client counted; what is still
          // open a moment later (a client that stopped reading) is cut. The rest of the stop list,
          // the usage flush included, then runs before the deadline.
          logger.warn({ open: open.size }, "drain deadline reached with requests open; ending them");
          graceOver.abort();
          await settle(Date.now() + 500);
          app.server.closeAllConnections();
        }
        await app.close();
      },
    },
    {
      name: "jobs",
      stop: () => {
        lateness?.close();
        return jobs.close();
      },
    },
    { name: "queue", stop: () => queue.stop() },
    { name: "usage", stop: () => usage.stop(Math.max(1000, deadline - Date.now())) },
    { name: "agents", stop: () => agents.stop() },
    {
      name: "redis",
      stop: async () => {
        sub.disconnect();
        await redis.quit().catch(() => redis.disconnect());
        queueConn.disconnect();
      },
    },
    { name: "postgres", stop: () => db.destroy() },
    { name: "tracing", stop: () => tracing.stop() },
  ];

  return { app, port, stoppers, stop: () => stopInOrder(logger, stoppers) };
}

/** Makes sure an admin key with exactly this secret exists (BOOTSTRAP_ADMIN_KEY). */
async function bootstrapAdmin(db: Kysely<DB>, secret: string): Promise<void> {
  if (await findKeyByHash(db, hashSecret(secret))) return;
  const tenant = await ensureTenant(db, "admin");
  try {
    await createApiKey(db, { tenantId: tenant.id, name: "bootstrap", scopes: ["admin", "deploy", "inference"], secret, tier: "priority" });
  } catch (err) {
    // Another gateway created it at the same moment.
    if (!(await findKeyByHash(db, hashSecret(secret)))) throw err;
  }
}
