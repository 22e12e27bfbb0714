/**
 * The HTTP server: routes for the configured engine (vLLM, TGI, TEI or the image server),
 * the startup delay, pre-request fault injection, error replies in the engine's shape, and
 * the sim's own control endpoints (/sim/faults, /sim/stats).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createLogger } from "@infera/core";
import { defaultConfig, type EngineSimOptions, type SimConfig } from "./config.ts";
import { newCounters, type SimContext } from "./context.ts";
import { createEngine } from "./engine.ts";
import { openAiEmbeddings } from "./embeddings.ts";
import { asSimError, errorReply, type Flavor, SimError, tgiErrorType } from "./errors.ts";
import { createFaultInjector, type FaultKind, isFaultKind } from "./faults.ts";
import { runGeneration } from "./generation.ts";
import { parseJsonBody, readBody, sendJson, sendText } from "./http.ts";
import { imageGenerations } from "./images.ts";
import { createLatencyModel } from "./latency.ts";
import { createEngineMetrics } from "./metrics.ts";
import { chatRun, completionRun } from "./openai.ts";
import { contextLengthError, parseChatRequest, parseCompletionRequest } from "./openai-request.ts";
import { teiEmbed, teiInfo } from "./tei.ts";
import { type ScoreAnswer, teiRerank, vllmRerank, vllmScore } from "./scoring.ts";
import { parseTgiRequest, tgiInfo, tgiRun, tgiTokenize } from "./tgi.ts";
import { asBody, type Body } from "./validate.ts";
import { modelList, VLLM_VERSION, vllmDetokenize, vllmTokenize } from "./vllm.ts";

export interface EngineSim {
  /** Listens (port 0 = ephemeral); resolves with the bound port. */
  start(port?: number, host?: string): Promise<{ port: number }>;
  /** Closes the listener and every open connection, and stops the scheduler. */
  stop(): Promise<void>;
  /** `http://host:port` once started. */
  readonly url: string;
  readonly config: Readonly<SimConfig>;
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: Body, fault: FaultKind | null) => void;

interface Route {
  handler: Handler;
  /** Inference routes count as requests and get faults injected. */
  inference: boolean;
  method: "GET" | "POST";
}

/** TGI and TEI limit request bodies (--payload-limit, 2 MB by default); vLLM effectively does not. */
const PAYLOAD_LIMIT: Record<Flavor, number> = { vllm: 64 * 1024 * 1024, tgi: 2_000_000, tei: 2_000_000, image: 1_000_000 };

function withoutUndefined(options: EngineSimOptions): EngineSimOptions {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as EngineSimOptions;
}

export function createEngineSim(options: EngineSimOptions = {}): EngineSim {
  const config = defaultConfig(withoutUndefined(options));
  const clock = config.clock ?? (() => performance.now());
  const random = config.random ?? Math.random;
  const flavor: Flavor = config.mode;
  const logger = createLogger({ service: "engine-sim", level: config.logLevel ?? "info" }).child({ component: "server", mode: config.mode });
  const latency = createLatencyModel(
    {
      ttftMs: config.ttftMs,
      itlMs: config.itlMs,
      prefillUsPerToken: config.prefillUsPerToken,
      jitter: config.jitter,
      loadFactor: config.loadFactor,
      maxNumSeqs: config.maxNumSeqs,
    },
    random,
  );
  // The engine and its metrics refer to each other: the gauges read the engine lazily.
  const gauges = { running: () => engine.running, waiting: () => engine.waiting, kvUsage: () => engine.kvUsage };
  const metrics = createEngineMetrics({ model: config.models[0] ?? "", tgi: config.mode === "tgi", gauges });
  const engine = createEngine({
    latency,
    maxNumSeqs: config.maxNumSeqs,
    maxWaiting: config.maxWaiting,
    kvCapacityTokens: config.kvCapacityTokens,
    observer: metrics,
    clock,
  });
  const faults = createFaultInjector({ rate: config.failureRate, kinds: config.failureKinds }, random);
  const counters = newCounters();
  const ctx: SimContext = { config, flavor, engine, faults, counters, logger, clock, random };
  const pending = new Set<NodeJS.Timeout>();
  let readyAt = Infinity;
  let url = "";
  let inFlightSimple = 0;
  /** The last requests received on the engine's POST routes, newest last (GET /sim/last-request, /sim/requests): what tests assert reached the engine. */
  const received: { method: string; path: string; headers: Record<string, string | string[] | undefined>; body: Body; at: number }[] = [];
  const RECEIVED_KEPT = 64;

  /** Answers after `delayMs` (embeddings, images), honouring disconnect/stall faults. */
  function answerLater(res: ServerResponse, delayMs: number, fault: FaultKind | null, send: () => void): void {
    if (inFlightSimple >= config.maxNumSeqs + config.maxWaiting) throw new SimError("overloaded", "Model is overloaded");
    inFlightSimple++;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      inFlightSimple--;
    };
    res.once("close", finish);
    if (fault === "stall") return; // never answers; the slot frees when the client gives up
    const timer = setTimeout(() => {
      pending.delete(timer);
      if (fault === "disconnect") res.destroy();
      else send();
      finish();
    }, delayMs);
    pending.add(timer);
  }

  function preFault(fault: FaultKind | null, body: Body): void {
    if (fault === null) return;
    counters.faults[fault] = (counters.faults[fault] ?? 0) + 1;
    switch (fault) {
      case "server_error":
        throw new SimError("server_error", "Simulated engine failure (injected server_error)");
      case "rate_limited":
        throw new SimError("rate_limited", flavor === "tgi" || flavor === "tei" ? "Model is overloaded" : "Too many requests (injected rate_limited)");
      case "context_length":
        throw contextLengthError(config.maxModelLen, config.maxModelLen + 1);
      case "model_not_found":
        throw new SimError("not_found", `The model \`${typeof body.model === "string" ? body.model : (config.models[0] ?? "")}\` does not exist.`, "model");
      default:
        return; // mid-stream kinds are handled by the generation
    }
  }

  const unsupported =
    (api: string): Handler =>
    () => {
      throw new SimError("not_found", `The model does not support ${api} API`);
    };

  // ---- route table ------------------------------------------------------------------------
  const routes = new Map<string, Route>();
  const get = (path: string, handler: Handler): void => void routes.set(`GET ${path}`, { handler, inference: false, method: "GET" });
  const post = (path: string, handler: Handler, inference = true): void => void routes.set(`POST ${path}`, { handler, inference, method: "POST" });

  const health: Handler = (_req, res) => {
    if (clock() < readyAt) {
      const reply = errorReply(flavor, new SimError("unavailable", flavor === "vllm" || flavor === "image" ? "The engine is starting up" : "unhealthy"));
      sendText(res, reply.status, reply.body, reply.headers);
      return;
    }
    sendText(res, 200, "");
  };
  get("/health", health);
  get("/metrics", (_req, res) => sendText(res, 200, metrics.render(), { "content-type": "text/plain; version=0.0.4; charset=utf-8" }));
  get("/sim/stats", (_req, res) => sendJson(res, 200, stats()));
  get("/sim/faults", (_req, res) => sendJson(res, 200, faults.get()));
  get("/sim/last-request", (_req, res) => (received.length === 0 ? sendJson(res, 404, { detail: "no request yet" }) : sendJson(res, 200, received.at(-1))));
  get("/sim/requests", (_req, res) => sendJson(res, 200, { data: received }));
  post(
    "/sim/faults",
    (_req, res, body) => {
      const rate = body.rate;
      if (typeof rate !== "number" || !(rate >= 0 && rate <= 1)) throw new SimError("invalid_request", "rate must be a number in [0, 1]", "rate");
      const rawKinds = typeof body.kinds === "string" ? body.kinds.split(",").map((k) => k.trim()) : body.kinds;
      if (!Array.isArray(rawKinds) || !rawKinds.every((k): k is FaultKind => typeof k === "string" && isFaultKind(k))) {
        throw new SimError(
          "invalid_request",
          "kinds must be a list of fault kinds (server_error, rate_limited, context_length, model_not_found, disconnect, stall, stream_error)",
          "kinds",
        );
      }
      faults.set({ rate, kinds: rawKinds });
      logger.info({ rate, kinds: rawKinds }, "fault injection changed");
      sendJson(res, 200, faults.get());
    },
    false,
  );

  const chat: Handler = (_req, res, body, fault) => runGeneration(ctx, res, chatRun(ctx, parseChatRequest(config, body)), fault);
  const completions: Handler = (_req, res, body, fault) => runGeneration(ctx, res, completionRun(ctx, parseCompletionRequest(config, body)), fault);
  const embeddings =
    (kind: "vllm" | "tei"): Handler =>
    (_req, res, body, fault) => {
      const answer = openAiEmbeddings(ctx, body, kind);
      answerLater(res, answer.delayMs, fault, () => sendJson(res, 200, answer.body));
    };

  const scored =
    (score: (c: SimContext, b: Body) => ScoreAnswer): Handler =>
    (_req, res, body, fault) => {
      const answer = score(ctx, body);
      answerLater(res, answer.delayMs, fault, () => sendJson(res, 200, answer.body, answer.headers));
    };

  if (config.mode === "vllm") {
    for (const path of ["/ping"]) {
      get(path, health);
      post(path, health, false);
    }
    get("/version", (_req, res) => sendJson(res, 200, { version: VLLM_VERSION }));
    get("/v1/models", (_req, res) => sendJson(res, 200, modelList(ctx, "vllm")));
    post("/tokenize", (_req, res, body) => sendJson(res, 200, vllmTokenize(ctx, body)), false);
    post("/detokenize", (_req, res, body) => sendJson(res, 200, vllmDetokenize(ctx, body)), false);
    if (config.task === "embeddings") {
      post("/v1/embeddings", embeddings("vllm"));
      // A pooling model also scores (vLLM serves /rerank and /score for embedding and cross-encoder models).
      for (const path of ["/rerank", "/v1/rerank", "/v2/rerank"]) post(path, scored(vllmRerank));
      for (const path of ["/score", "/v1/score"]) post(path, scored(vllmScore));
      post("/v1/chat/completions", unsupported("Chat Completions"));
      post("/v1/completions", unsupported("Completions"));
    } else {
      post("/v1/chat/completions", chat);
      post("/v1/completions", completions);
      post("/v1/embeddings", unsupported("Embeddings"));
      for (const path of ["/rerank", "/v1/rerank", "/v2/rerank"]) post(path, unsupported("Rerank"));
      for (const path of ["/score", "/v1/score"]) post(path, unsupported("Score"));
    }
  } else if (config.mode === "tgi") {
    get("/info", (_req, res) => sendJson(res, 200, tgiInfo(ctx)));
    get("/v1/models", (_req, res) => sendJson(res, 200, modelList(ctx, "text-generation-inference")));
    post("/tokenize", (_req, res, body) => sendJson(res, 200, tgiTokenize(body)), false);
    post("/generate", (_req, res, body, fault) => runGeneration(ctx, res, tgiRun(parseTgiRequest(ctx, body), false), fault));
    post("/generate_stream", (_req, res, body, fault) => runGeneration(ctx, res, tgiRun(parseTgiRequest(ctx, body), true), fault));
    post("/v1/chat/completions", chat);
    post("/v1/completions", completions);
  } else if (config.mode === "tei") {
    get("/info", (_req, res) => sendJson(res, 200, teiInfo(ctx)));
    post("/embed", (_req, res, body, fault) => {
      const answer = teiEmbed(ctx, body);
      answerLater(res, answer.delayMs, fault, () => sendJson(res, 200, answer.body, answer.headers));
    });
    post("/v1/embeddings", embeddings("tei"));
    post("/rerank", scored(teiRerank));
  } else {
    get("/v1/models", (_req, res) => sendJson(res, 200, modelList(ctx, "engine-sim")));
    post("/v1/images/generations", (_req, res, body, fault) => {
      const answer = imageGenerations(ctx, body);
      answerLater(res, answer.delayMs, fault, () => sendJson(res, 200, answer.body));
    });
  }

  function stats(): unknown {
    const e = engine.stats;
    return {
      mode: config.mode,
      model: config.models[0],
      requests: counters.requests,
      completed: e.completed,
      aborted: e.aborted,
      failed: counters.failed,
      rejected: e.rejected,
      faults: counters.faults,
      promptTokens: e.promptTokens,
      completionTokens: e.completionTokens,
      completedPromptTokens: e.completedPromptTokens,
      completedCompletionTokens: e.completedCompletionTokens,
      running: engine.running,
      waiting: engine.waiting,
      embeddings: { calls: counters.embeddingCalls, inputs: counters.embeddingInputs, promptTokens: counters.embeddingTokens },
      images: { calls: counters.imageCalls, images: counters.images },
    };
  }

  function fail(res: ServerResponse, err: unknown): void {
    const simErr = asSimError(err);
    if (!(err instanceof SimError)) logger.error({ err }, "unexpected error");
    counters.failed++;
    metrics.failed(tgiErrorType(simErr.kind));
    if (res.headersSent) {
      res.end();
      return;
    }
    const reply = errorReply(flavor, simErr);
    sendText(res, reply.status, reply.body, reply.headers);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rawUrl = req.url ?? "/";
    const q = rawUrl.indexOf("?");
    const path = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
    const method = req.method === "HEAD" ? "GET" : (req.method ?? "GET");
    const route = routes.get(`${method} ${path}`);
    if (route === undefined) {
      const known = routes.has(`GET ${path}`) || routes.has(`POST ${path}`);
      req.resume();
      if (flavor === "vllm" || flavor === "image") sendJson(res, known ? 405 : 404, { detail: known ? "Method Not Allowed" : "Not Found" });
      else sendText(res, known ? 405 : 404, "");
      return;
    }
    try {
      let body: Body = {};
      if (route.method === "POST") body = asBody(parseJsonBody(await readBody(req, PAYLOAD_LIMIT[flavor])));
      if (route.method === "POST" && !path.startsWith("/sim/")) {
        received.push({ method, path, headers: req.headers, body, at: Date.now() });
        if (received.length > RECEIVED_KEPT) received.shift();
      }
      if (route.inference) {
        counters.requests++;
        if (clock() < readyAt) throw new SimError("unavailable", "The engine is starting up");
      }
      const fault = route.inference ? faults.draw() : null;
      preFault(fault, body);
      route.handler(req, res, body, fault);
    } catch (err) {
      if (err instanceof SimError && err.kind === "too_large") req.resume();
      fail(res, err);
    }
  }

  let server: Server | null = null;
  return {
    config,
    get url() {
      return url;
    },
    async start(port = 0, host = "127.0.0.1") {
      readyAt = clock() + config.startupDelayMs;
      const s = createServer({ keepAliveTimeout: 65_000, noDelay: true }, (req, res) => void handle(req, res));
      server = s;
      await new Promise<void>((resolve, reject) => {
        s.once("error", reject);
        // A deep accept backlog: a benchmark opens thousands of connections at once (uvicorn uses 2048).
        s.listen({ port, host, backlog: 4096 }, () => {
          s.off("error", reject);
          resolve();
        });
      });
      const bound = (s.address() as AddressInfo).port;
      url = `http://${host.includes(":") ? `[${host}]` : host}:${bound}`;
      logger.info({ url, models: config.models, task: config.task }, "engine-sim listening");
      return { port: bound };
    },
    async stop() {
      engine.stop();
      for (const t of pending) clearTimeout(t);
      pending.clear();
      const s = server;
      server = null;
      if (s === null) return;
      await new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      });
    },
  };
}
