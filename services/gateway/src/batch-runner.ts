/**
 * The gateway's BullMQ worker for `batch-lines`: a chunk of a batch's lines, each run through
 * the same pipeline as an HTTP request (the route's schema, model resolution and capability
 * checks, then `runInference`: admission, the queue, the agent call, usage) with a
 * `LineWriter` in place of the HTTP response. Batch lines run here and not in the scheduler
 * because only gateways hold request bodies and talk to agents: nothing reaches an engine
 * except through a gateway.
 *
 * Each line runs in the batch class (the key's principal with tier `batch`), with a request id
 * derived from batch and line, so its usage record is written once however often it runs,
 * at the model's batch price (its prices × `batch_price_factor`). Its answer is recorded once
 * (`recordLine`). What a line's answer is depends on whose fault a failure is:
 * - the request itself (a 4xx: validation, unknown model, the engine refused it): recorded, failed, at once;
 * - the platform (nothing written, 429, 500, 503, 504: rate limit, queue full, no replica, Redis
 *   or the scheduler away, this gateway stopping, a replica lost, an error of our own): not
 *   recorded — the chunk fails so BullMQ runs it again shortly, its answered lines skipped;
 * - the engine (502: it answered a 5xx): tried again in place, `lineAttempts` times in all,
 *   then recorded with its last answer — so a line an engine always fails on ends (the batch's
 *   expiry bounds the rest).
 * A batch that leaves in_progress (cancelled, expired) aborts its lines in flight.
 */
import { EventEmitter } from "node:events";
import type { ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { Ajv } from "ajv";
import type { Kysely } from "kysely";
import { type Logger, PlatformError, type Stoppable } from "@infera/core";
import { type Job, type JobQueues, type JobsConnection, readBatchLines, startJobWorker, type BatchInputLine } from "@infera/jobs";
import { answeredLines, type Batch, batchLineRequestId, type DB, findBatch, getFile, recordLine, setBatchStatus } from "@infera/registry";
import type { BlobStore } from "@infera/storage";
import type { KeyCache, Principal } from "./auth.ts";
import { errorBody, httpStatusOf, toPlatformError } from "./errors.ts";
import { runInference, type InferenceDeps } from "./inference.ts";
import { chatInput, completionInput, embeddingInput, type PreparedInput } from "./inference-input.ts";
import type { GatewayContext } from "./context.ts";
import { ChatCompletionRequest, CompletionRequest, EmbeddingRequest } from "./openai-schema.ts";
import type { BatchPacer } from "./batch-pacing.ts";
import { validationError, type SchemaError } from "./validation.ts";

/** The endpoints a batch may name, each with its route's schema and input. */
const ENDPOINTS = {
  "/v1/chat/completions": { schema: ChatCompletionRequest, input: chatInput },
  "/v1/completions": { schema: CompletionRequest, input: completionInput },
  "/v1/embeddings": { schema: EmbeddingRequest, input: embeddingInput },
} as const;
export type BatchEndpoint = keyof typeof ENDPOINTS;
export const BATCH_ENDPOINTS = Object.keys(ENDPOINTS) as BatchEndpoint[];

/**
 * Whose fault a line's status is: its own (recorded), the platform's (run again later,
 * unrecorded, however often), or the engine's (tried again in place, then recorded). 502 is
 * what an engine's 5xx becomes (agent-call's engineError); an agent that lost its engine is
 * re-queued there, so it does not end here as a 502.
 */
export function lineFault(statusCode: number): "answer" | "platform" | "engine" {
  if (statusCode === 502) return "engine";
  if (statusCode === 0 || statusCode === 429 || statusCode >= 500) return "platform";
  return "answer";
}

/** Tries of a line the engine answers with a 5xx, in one run of its chunk, before that answer is its own. */
const LINE_ATTEMPTS = 3;
/** The wait before the second try of such a line, doubling. */
const LINE_RETRY_MS = 500;

/** What `runInference` writes, kept: the status and the whole body (batch lines never stream). */
class LineWriter extends EventEmitter {
  statusCode = 0;
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  private readonly chunks: string[] = [];

  writeHead(status: number): this {
    this.statusCode = status;
    this.headersSent = true;
    return this;
  }
  write(data: string | Uint8Array): boolean {
    this.chunks.push(typeof data === "string" ? data : Buffer.from(data).toString());
    return true;
  }
  end(data?: string | Uint8Array): this {
    if (data !== undefined) this.write(data);
    this.writableEnded = true;
    this.writableFinished = true;
    return this;
  }
  cork(): void {}
  uncork(): void {}
  /** The line is given up on: the pipeline sees its client go away. */
  abort(): void {
    if (!this.writableFinished) this.emit("close");
  }
  get body(): string {
    return this.chunks.join("");
  }
  asResponse(): ServerResponse {
    return this as unknown as ServerResponse;
  }
}

type LineResult = { statusCode: number; response: unknown } | "retry";

export interface BatchRunnerOptions {
  db: Kysely<DB>;
  blobs: BlobStore;
  keys: KeyCache;
  ctx: Pick<GatewayContext, "resolver" | "tokenizers">;
  inference: InferenceDeps;
  pacer: BatchPacer;
  jobs: JobQueues;
  connection: JobsConnection;
  logger: Logger;
  /** Chunk jobs worked at once. */
  concurrency: number;
  /** How often a running chunk checks that its batch is still in progress. */
  watchMs?: number;
  /** Tries of a line the engine answers with a 5xx before that is its answer (default 3). */
  lineAttempts?: number;
}

export function startBatchRunner(o: BatchRunnerOptions): Stoppable {
  const log = o.logger.child({ component: "batch-runner" });
  const ajv = new Ajv({ coerceTypes: false, removeAdditional: false, allErrors: true, useDefaults: false, strict: false });
  const validators = new Map(BATCH_ENDPOINTS.map((e) => [e, ajv.compile(ENDPOINTS[e].schema)]));
  const stopping = new AbortController();

  const answer = (err: unknown): LineResult => {
    const e = toPlatformError(err);
    return { statusCode: httpStatusOf(e), response: errorBody(e) };
  };

  async function runLine(batch: Batch, principal: Principal | null, line: BatchInputLine, signal: AbortSignal): Promise<LineResult> {
    const endpoint = batch.endpoint as BatchEndpoint;
    const at = `Line ${line.lineNo + 1}`;
    if (!principal) return answer(new PlatformError("invalid_api_key", "The API key that created this batch is revoked or expired."));
    if (!line.body) return answer(new PlatformError("invalid_request", `${at}: ${line.invalid}.`));
    // A line's answer is whole: streaming is the interactive API's.
    const body: Record<string, unknown> = { ...line.body };
    delete body.stream;
    delete body.stream_options;
    const validate = validators.get(endpoint);
    if (!validate) return answer(new PlatformError("invalid_request", `${at}: the batch endpoint '${endpoint}' is not supported.`));
    if (!validate(body)) return answer(validationError((validate.errors ?? []) as SchemaError[], body));
    let input: PreparedInput;
    try {
      input = await ENDPOINTS[endpoint].input(o.ctx, principal, body as never);
    } catch (err) {
      const r = answer(err);
      return r !== "retry" && lineFault(r.statusCode) === "platform" ? "retry" : r;
    }
    const m = input.model;
    const f = m.batchPriceFactor;
    const model = { ...m, priceInputPerM: m.priceInputPerM * f, priceOutputPerM: m.priceOutputPerM * f, pricePerImage: m.pricePerImage * f };
    const attempts = o.lineAttempts ?? LINE_ATTEMPTS;
    for (let attempt = 1; ; attempt++) {
      let release: () => void;
      try {
        release = await o.pacer.acquire(m.deploymentId, signal);
      } catch {
        return "retry";
      }
      const w = new LineWriter();
      const onAbort = () => w.abort();
      signal.addEventListener("abort", onAbort);
      try {
        await runInference(o.inference, w.asResponse(), {
          ...input,
          model,
          // The batch class, whatever the key's tier or the line's service_tier.
          serviceTier: undefined,
          principal: { ...principal, tier: "batch" },
          requestId: batchLineRequestId(batch.id, line.lineNo),
          route: "/v1/openai/batches",
          startedAt: performance.now(),
          attributes: { ...input.attributes, batchId: batch.id },
        });
      } finally {
        signal.removeEventListener("abort", onAbort);
        release();
      }
      const fault = lineFault(w.statusCode);
      if (signal.aborted || fault === "platform") return "retry";
      if (fault === "engine" && attempt < attempts) {
        log.warn({ batchId: batch.id, line: line.lineNo, attempt, status: w.statusCode }, "the engine failed a batch line; it is tried again");
        try {
          await sleep(LINE_RETRY_MS * 2 ** (attempt - 1), undefined, { signal });
        } catch {
          return "retry";
        }
        continue;
      }
      let response: unknown = w.body;
      try {
        response = JSON.parse(w.body);
      } catch {
        // kept as the text it was
      }
      return { statusCode: w.statusCode, response };
    }
  }

  async function runChunk(data: { batchId: string; from: number; to: number }, job: Job): Promise<void> {
    const { batchId, from, to } = data;
    const batch = await findBatch(o.db, batchId);
    if (batch?.status !== "in_progress") return;
    const answered = await answeredLines(o.db, batchId, from, to);
    if (answered.size < to - from) {
      const file = await getFile(o.db, batch.tenant_id, batch.input_file_id);
      if (!file) {
        await setBatchStatus(o.db, batchId, "failed", {
          errors: {
            object: "list",
            data: [{ code: "file_not_found", message: "The input file was deleted while the batch ran.", param: "input_file_id", line: null }],
          },
        });
        return;
      }
      const principal = await o.keys.principalOfKey(batch.key_id);
      const stop = new AbortController();
      const onStop = () => stop.abort();
      stopping.signal.addEventListener("abort", onStop);
      const watch = setInterval(() => {
        findBatch(o.db, batchId)
          .then((b) => {
            if (b?.status !== "in_progress") stop.abort();
          })
          .catch(() => {});
      }, o.watchMs ?? 500);
      let retry = 0;
      let done = answered.size;
      const running: Promise<void>[] = [];
      try {
        for await (const line of readBatchLines(await o.blobs.get(file.storageKey), from, to)) {
          if (answered.has(line.lineNo)) continue;
          running.push(
            runLine(batch, principal, line, stop.signal)
              .catch((err: unknown) => {
                log.error({ err, batchId, line: line.lineNo }, "a batch line failed unexpectedly; it runs again");
                return "retry" as const;
              })
              .then(async (r) => {
                if (r === "retry") {
                  retry++;
                  return;
                }
                const ok = r.statusCode >= 200 && r.statusCode < 300;
                await recordLine(o.db, {
                  batchId,
                  lineNo: line.lineNo,
                  customId: line.customId,
                  status: ok ? "completed" : "failed",
                  statusCode: r.statusCode,
                  requestId: batchLineRequestId(batchId, line.lineNo),
                  response: r.response,
                  error: null,
                });
                done++;
                void job.updateProgress({ answered: done, lines: to - from }).catch(() => {});
              }),
          );
        }
        await Promise.all(running);
      } finally {
        clearInterval(watch);
        stopping.signal.removeEventListener("abort", onStop);
      }
      if (stop.signal.aborted && !stopping.signal.aborted) return;
      if (retry > 0) throw new Error(`${retry} line(s) of ${batchId} [${from}, ${to}) could not run now; the chunk runs again`);
    }
    const b = await findBatch(o.db, batchId);
    if (b?.status === "in_progress" && b.completed + b.failed >= b.total) {
      await o.jobs.add("batch.finalize", { batchId }, { jobId: `finalize-${batchId}` });
    }
  }

  const worker =
    o.concurrency > 0 ? startJobWorker(o.connection, "batch-lines", { "batch.lines": runChunk }, { concurrency: o.concurrency, logger: log }) : undefined;
  return {
    name: "batches",
    stop: async () => {
      // Lines in flight are given up on (not recorded): their chunks run again on another gateway.
      stopping.abort();
      await worker?.stop();
    },
  };
}
