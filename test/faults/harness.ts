/**
 * What every fault test shares: the platform started as `pnpm start` does with fast
 * heartbeats, short timeouts and the chat deployment scaled to two replicas; a bounded
 * streaming load generator whose every call has a hard timeout and records exactly how
 * it ended; a watcher of the engines' own counters (/sim/stats); and the invariants.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import pg from "pg";
import { expect } from "vitest";
import { createDb, listDeployments, updateDeploymentSettings } from "@infera/registry";
import { metricSum, parseMetrics, platformReplicas, startPlatform, waitFor, type Platform, type PlatformOptions } from "@infera/testkit";

export const MODEL = "meta-llama/Meta-Llama-3-8B-Instruct";

/** The Responses API's input items of every kind, for the fuzz tests' valid Responses bodies. */
export const RESPONSES_INPUT = [
  { role: "user", content: [{ type: "input_text", text: "hi" }] },
  { type: "function_call", call_id: "c1", name: "f", arguments: "{}" },
  { type: "function_call_output", call_id: "c1", output: "ok" },
];

/** Timeouts the fault tests run with (short, so a fault resolves within a test). */
export const FAULT_ENV: Record<string, string> = {
  HEARTBEAT_MS: "200",
  RECONCILE_MS: "200",
  SIM_TTFT_MS: "20",
  SIM_ITL_MS: "15",
  AGENT_IDLE_TIMEOUT_MS: "2500",
  AGENT_CALL_TIMEOUT_MS: "10000",
  QUEUE_WAIT_MS: "25000",
  JOB_LOCK_MS: "4000",
  SHUTDOWN_GRACE_MS: "8000",
  CACHE_TTL_MS: "1000",
  MAX_ATTEMPTS: "4",
};

/** A client gives up on any call after this: a request still open then is a hang. */
export const HARD_TIMEOUT_MS = 40_000;

export async function startFaultPlatform(label: string, replicas: number, extra: Partial<PlatformOptions> = {}): Promise<Platform> {
  // A busy 2-core machine (other suites running) can take minutes to start everything.
  const platform = await startPlatform({ label, catalog: ["chat"], readyTimeoutMs: 240_000, ...extra, env: { ...FAULT_ENV, ...extra.env } });
  if (replicas !== 1) await scaleChat(platform, replicas);
  return platform;
}

export async function chatDeploymentId(platform: Platform): Promise<string> {
  const db = createDb(platform.databaseUrl, { max: 1 });
  try {
    const d = (await listDeployments(db, { tenantId: null })).find((x) => x.model_name === MODEL && x.status !== "deleted");
    if (!d) throw new Error("no chat deployment");
    return d.id;
  } finally {
    await db.destroy();
  }
}

/** Sets the catalog chat deployment to `n` replicas (min = max = n) and waits until n report healthy. */
export async function scaleChat(platform: Platform, n: number, timeoutMs = 60_000): Promise<void> {
  const id = await chatDeploymentId(platform);
  const db = createDb(platform.databaseUrl, { max: 1 });
  try {
    await updateDeploymentSettings(db, id, { min_instances: n, max_instances: n });
  } finally {
    await db.destroy();
  }
  await waitForHealthyReplicas(platform, n, timeoutMs);
}

export async function healthyReplicas(platform: Platform): Promise<string[]> {
  const id = await chatDeploymentId(platform);
  const r = new Redis(platform.redisUrl, { maxRetriesPerRequest: 1 });
  r.on("error", () => {});
  try {
    const all = await r.hgetall(`${platform.redisPrefix}:replicas:${id}`);
    const now = Date.now();
    return Object.values(all)
      .map((j) => JSON.parse(j) as { replicaId: string; healthy: boolean; draining: boolean; at: number })
      .filter((x) => x.healthy && !x.draining && now - x.at < 1500)
      .map((x) => x.replicaId);
  } finally {
    r.disconnect();
  }
}

export async function waitForHealthyReplicas(platform: Platform, n: number, timeoutMs = 60_000): Promise<void> {
  await waitFor(`${n} healthy replicas`, async () => (await healthyReplicas(platform)).length >= n, { timeoutMs, intervalMs: 200 });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- load --------------------------------------------------------------------------------

export type Outcome =
  /** [DONE] after a finish chunk with usage: the whole answer. */
  | { kind: "completed"; promptTokens: number; completionTokens: number }
  /** An OpenAI-shaped error: a 4xx/5xx JSON body, or one `data: {"error": …}` event ending the stream. */
  | { kind: "error"; status: number; code: string | null; midStream: boolean }
  /** The connection was refused before any answer: never accepted (the gateway is down). */
  | { kind: "refused"; detail: string }
  /** Anything else: a hang past the hard timeout, a cut stream, a body that is not OpenAI's. */
  | { kind: "violation"; detail: string };

export interface RequestRecord {
  requestId: string;
  startedAt: number;
  endedAt: number;
  outcome: Outcome;
}

interface OpenAIError {
  error: { message: string; type: string; param?: unknown; code?: unknown };
}

export function isOpenAIError(x: unknown): x is OpenAIError {
  const e = (x as OpenAIError | null)?.error;
  return typeof e === "object" && e !== null && typeof e.message === "string" && e.message.length > 0 && typeof e.type === "string";
}

export interface CallOptions {
  baseURL: string;
  key: string;
  requestId: string;
  maxTokens: number;
  stream: boolean;
  prompt?: string;
  timeoutMs?: number;
}

/** One chat call with raw fetch, classified exactly; never throws, never outlives its hard timeout. */
export async function chatCall(o: CallOptions): Promise<RequestRecord> {
  const startedAt = Date.now();
  const done = (outcome: Outcome): RequestRecord => ({ requestId: o.requestId, startedAt, endedAt: Date.now(), outcome });
  const signal = AbortSignal.timeout(o.timeoutMs ?? HARD_TIMEOUT_MS);
  let res: Response;
  try {
    res = await fetch(`${o.baseURL}/v1/openai/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${o.key}`, "x-request-id": o.requestId },
      body: JSON.stringify({
        model: MODEL,
        messages: [{ role: "user", content: o.prompt ?? `Tell me a story, ${o.requestId}` }],
        max_tokens: o.maxTokens,
        stream: o.stream,
      }),
      signal,
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? "";
    if (signal.aborted) return done({ kind: "violation", detail: "no response headers before the hard timeout" });
    if (cause === "ECONNREFUSED") return done({ kind: "refused", detail: cause });
    // A keep-alive connection the server closed as the request went out (HTTP/1.1's
    // known race; the official client retries it): reset before any byte of an answer.
    if (cause === "ECONNRESET" || cause === "UND_ERR_SOCKET") return done({ kind: "refused", detail: `${cause} before any answer` });
    return done({ kind: "violation", detail: `fetch failed before headers: ${(err as Error).message} ${cause}` });
  }
  let text: string;
  try {
    text = await res.text();
  } catch (err) {
    return done({ kind: "violation", detail: signal.aborted ? "body still open at the hard timeout (hang)" : `body cut: ${(err as Error).message}` });
  }
  if (res.status !== 200) {
    let j: unknown;
    try {
      j = JSON.parse(text);
    } catch {
      return done({ kind: "violation", detail: `status ${res.status} with a body that is not JSON: ${text.slice(0, 200)}` });
    }
    if (!isOpenAIError(j)) return done({ kind: "violation", detail: `status ${res.status} with a body that is not OpenAI's error: ${text.slice(0, 200)}` });
    return done({ kind: "error", status: res.status, code: (j.error.code as string | null) ?? null, midStream: false });
  }
  // The client's id comes back as a correlation field; x-request-id is the platform's own.
  if (res.headers.get("x-client-request-id") !== o.requestId)
    return done({ kind: "violation", detail: `x-client-request-id ${res.headers.get("x-client-request-id")} is not ${o.requestId}` });
  if (!/^req_[0-9a-f]{24}$/.test(res.headers.get("x-request-id") ?? ""))
    return done({ kind: "violation", detail: `x-request-id ${res.headers.get("x-request-id")}` });
  if (!o.stream) {
    const j = JSON.parse(text) as { usage?: { prompt_tokens: number; completion_tokens: number } };
    if (!j.usage) return done({ kind: "violation", detail: "a 200 without usage" });
    return done({ kind: "completed", promptTokens: j.usage.prompt_tokens, completionTokens: j.usage.completion_tokens });
  }
  // SSE: data frames; [DONE] last; an error frame ends it.
  const frames = text
    .split("\n\n")
    .filter((f) => f.trim().length > 0)
    .map((f) => f.replace(/^data: /, ""));
  let usage: { prompt_tokens: number; completion_tokens: number } | undefined;
  let dones = 0;
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i]!;
    if (f === "[DONE]") {
      dones++;
      if (i !== frames.length - 1) return done({ kind: "violation", detail: "frames after [DONE]" });
      continue;
    }
    let j: unknown;
    try {
      j = JSON.parse(f);
    } catch {
      return done({ kind: "violation", detail: `a frame that is not JSON: ${f.slice(0, 120)}` });
    }
    if ((j as { error?: unknown }).error !== undefined) {
      if (!isOpenAIError(j)) return done({ kind: "violation", detail: `an error frame that is not OpenAI's: ${f.slice(0, 200)}` });
      if (i !== frames.length - 1) return done({ kind: "violation", detail: "frames after an error frame" });
      return done({ kind: "error", status: 200, code: (j.error.code as string | null) ?? null, midStream: true });
    }
    const u = (j as { usage?: { prompt_tokens: number; completion_tokens: number } }).usage;
    if (u) usage = u;
  }
  if (dones !== 1) return done({ kind: "violation", detail: `stream ended without [DONE] or an error event (${frames.length} frames)` });
  if (!usage) return done({ kind: "violation", detail: "stream finished without usage" });
  return done({ kind: "completed", promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens });
}

export interface Load {
  records: RequestRecord[];
  /** Requests open right now. */
  readonly inflight: number;
  /** Requests started so far. */
  readonly started: number;
  /** How many of the open requests started before `t`. */
  openStartedBefore(t: number): number;
  /** Stop starting new requests; resolves when every open one has ended. */
  stop(): Promise<RequestRecord[]>;
}

/** `concurrency` workers, each calling back to back until stopped (streaming unless told). */
export function startLoad(o: {
  baseURL: string;
  key: string;
  label: string;
  concurrency: number;
  maxTokens?: number;
  stream?: boolean;
  pauseMs?: number;
}): Load {
  const records: RequestRecord[] = [];
  let stopping = false;
  let inflight = 0;
  let n = 0;
  const open = new Map<string, number>();
  const tag = randomBytes(3).toString("hex");
  const worker = async (w: number) => {
    while (!stopping) {
      const requestId = `flt-${o.label}-${tag}-${w}-${n++}`;
      inflight++;
      open.set(requestId, Date.now());
      const r = await chatCall({ baseURL: o.baseURL, key: o.key, requestId, maxTokens: o.maxTokens ?? 40 + ((n * 7) % 40), stream: o.stream ?? true });
      inflight--;
      open.delete(requestId);
      records.push(r);
      if (r.outcome.kind === "refused" || r.outcome.kind === "error") await sleep(100);
      if (o.pauseMs) await sleep(o.pauseMs);
    }
  };
  const all = Promise.all(Array.from({ length: o.concurrency }, (_, w) => worker(w)));
  return {
    records,
    get inflight() {
      return inflight;
    },
    get started() {
      return n;
    },
    openStartedBefore(t) {
      return [...open.values()].filter((s) => s < t).length;
    },
    async stop() {
      stopping = true;
      await all;
      return records;
    },
  };
}

// ---- engines' own counters ---------------------------------------------------------------

export interface SimStats {
  requests: number;
  completed: number;
  aborted: number;
  running: number;
  waiting: number;
  completedPromptTokens: number;
  completedCompletionTokens: number;
}

/** Polls every engine's /sim/stats; keeps each engine's last answer, also after it died. */
export class EngineWatch {
  readonly last = new Map<string, SimStats>();
  private base = new Map<string, SimStats>();
  /** Engines that answered the last poll. */
  private alive = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;

  constructor(
    private readonly platform: Platform,
    private readonly extraSchedulers: () => number[] = () => [],
  ) {}

  start(intervalMs = 100): this {
    this.timer = setInterval(() => void this.poll(), intervalMs);
    return this;
  }

  /** One poll at a time; a caller during a poll waits for it. */
  poll(): Promise<void> {
    this.polling ??= this.pollOnce().finally(() => (this.polling = undefined));
    return this.polling;
  }

  private async pollOnce(): Promise<void> {
    const alive = new Set<string>();
    await Promise.all(
      platformReplicas(this.platform.pid, this.extraSchedulers()).map(async (r) => {
        if (r.enginePid === undefined) return;
        try {
          const s = (await (await fetch(`${r.engineUrl}/sim/stats`, { signal: AbortSignal.timeout(1000) })).json()) as SimStats;
          this.last.set(`${r.enginePid}@${r.engineUrl}`, s);
          alive.add(`${r.enginePid}@${r.engineUrl}`);
        } catch {
          // dying or frozen: keep the last answer
        }
      }),
    );
    this.alive = alive;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Count from now on: totals() are deltas since this call. A poll already under way may
   * have read an engine before its last request finished, so wait for it, then poll afresh. */
  async baseline(): Promise<void> {
    await this.poll();
    await this.poll();
    this.base = new Map(this.last);
  }

  totals(): { completed: number; promptTokens: number; completionTokens: number; running: number; waiting: number } {
    const t = { completed: 0, promptTokens: 0, completionTokens: 0, running: 0, waiting: 0 };
    for (const [k, s] of this.last) {
      const b = this.base.get(k);
      t.completed += s.completed - (b?.completed ?? 0);
      t.promptTokens += s.completedPromptTokens - (b?.completedPromptTokens ?? 0);
      t.completionTokens += s.completedCompletionTokens - (b?.completedCompletionTokens ?? 0);
      if (!this.alive.has(k)) continue;
      t.running += s.running;
      t.waiting += s.waiting;
    }
    return t;
  }
}

// ---- invariants --------------------------------------------------------------------------

export interface UsageRow {
  request_id: string;
  status: string;
  prompt_tokens: number;
  completion_tokens: number;
}

export async function usageRows(platform: Platform, like: string): Promise<UsageRow[]> {
  const c = new pg.Client({ connectionString: platform.databaseUrl });
  await c.connect();
  try {
    // Matched by the client's own ids (the tests choose them); request_id is the platform's.
    const r = await c.query<UsageRow>(
      "select client_request_id as request_id, status, prompt_tokens, completion_tokens from usage_records where client_request_id like $1",
      [like],
    );
    return r.rows;
  } finally {
    await c.end();
  }
}

export async function gatewayMetrics(platform: Platform): Promise<Map<string, number>> {
  return parseMetrics(await (await fetch(`${platform.baseURL}/metrics`, { signal: AbortSignal.timeout(5000) })).text());
}

/** Every request ended within the hard timeout with a complete answer or an OpenAI-shaped error. */
export function expectEveryRequestEnded(records: RequestRecord[], opts: { allowRefused?: boolean } = {}): void {
  const bad = records.filter((r) => r.outcome.kind === "violation" || (!opts.allowRefused && r.outcome.kind === "refused"));
  expect(bad.map((r) => `${r.requestId}: ${JSON.stringify(r.outcome)}`)).toEqual([]);
  for (const r of records) expect(r.endedAt - r.startedAt).toBeLessThan(HARD_TIMEOUT_MS);
}

export function completed(records: RequestRecord[]): Map<string, Extract<Outcome, { kind: "completed" }>> {
  const m = new Map<string, Extract<Outcome, { kind: "completed" }>>();
  for (const r of records) if (r.outcome.kind === "completed") m.set(r.requestId, r.outcome);
  return m;
}

/**
 * No request served twice, and usage is exact: request ids are unique; each completed
 * request has exactly one `ok` usage row with the tokens the client saw; no `ok` row
 * belongs to a request the client did not see complete.
 */
export async function expectUsageMatchesClients(platform: Platform, records: RequestRecord[], like: string): Promise<UsageRow[]> {
  const ids = records.map((r) => r.requestId);
  expect(new Set(ids).size).toBe(ids.length);
  // Usage is written in batches: wait for the gateway to have nothing pending.
  const end = Date.now() + 20_000;
  while (Date.now() < end) {
    const m = await gatewayMetrics(platform).catch(() => undefined);
    if (m && metricSum(m, "gateway_usage_records_pending") === 0) break;
    await sleep(200);
  }
  await sleep(400);
  const rows = await usageRows(platform, like);
  const byId = new Map<string, UsageRow[]>();
  for (const row of rows) byId.set(row.request_id, [...(byId.get(row.request_id) ?? []), row]);
  expect([...byId.entries()].filter(([, v]) => v.length > 1).map(([k]) => k)).toEqual([]);
  const done = completed(records);
  const missing: string[] = [];
  const wrong: string[] = [];
  for (const [id, u] of done) {
    const row = byId.get(id)?.[0];
    if (row?.status !== "ok") missing.push(`${id} (${row?.status ?? "no row"})`);
    else if (row.prompt_tokens !== u.promptTokens || row.completion_tokens !== u.completionTokens) wrong.push(id);
  }
  const extra = rows.filter((row) => row.status === "ok" && !done.has(row.request_id)).map((row) => row.request_id);
  expect({ missing, wrong, extra }).toEqual({ missing: [], wrong: [], extra: [] });
  return rows;
}

/**
 * Usage in Postgres equals what the engines report for completed work. Exact when every
 * engine lived through the test; `slack` requests (those open on a killed or frozen
 * replica at the fault: its engine may have finished work nobody could deliver, or its
 * last stats were read just before it died) otherwise.
 */
export function expectUsageMatchesEngines(rows: UsageRow[], watch: EngineWatch, slack = 0): void {
  const ok = rows.filter((r) => r.status === "ok");
  const t = watch.totals();
  const billed = {
    completed: ok.length,
    promptTokens: ok.reduce((n, r) => n + r.prompt_tokens, 0),
    completionTokens: ok.reduce((n, r) => n + r.completion_tokens, 0),
  };
  if (slack === 0) {
    expect(billed).toEqual({ completed: t.completed, promptTokens: t.promptTokens, completionTokens: t.completionTokens });
  } else {
    console.log("[usage vs engines] billed", billed.completed, "engines", t.completed, "slack", slack);
    expect(Math.abs(billed.completed - t.completed)).toBeLessThanOrEqual(slack);
  }
}

/** Nothing left open: the gateway's open streams, the engines' running and waiting requests. */
export async function expectNothingOpen(platform: Platform, watch: EngineWatch): Promise<void> {
  const end = Date.now() + 15_000;
  let last = { streams: -1, running: -1, waiting: -1 };
  while (Date.now() < end) {
    const m = await gatewayMetrics(platform).catch(() => undefined);
    await watch.poll();
    const t = watch.totals();
    last = { streams: m ? metricSum(m, "gateway_open_streams") : -1, running: t.running, waiting: t.waiting };
    if (last.streams === 0 && last.running === 0 && last.waiting === 0) return;
    await sleep(250);
  }
  expect(last).toEqual({ streams: 0, running: 0, waiting: 0 });
}

/** The platform serves normally, with no manual step: streamed and whole answers. */
export async function expectServesNormally(platform: Platform, label: string): Promise<void> {
  const end = Date.now() + 30_000;
  for (let i = 0; ; i++) {
    const a = await chatCall({
      baseURL: platform.baseURL,
      key: platform.adminKey,
      requestId: `after-${label}-${randomBytes(4).toString("hex")}-${i}`,
      maxTokens: 5,
      stream: true,
      timeoutMs: 15_000,
    });
    const b = await chatCall({
      baseURL: platform.baseURL,
      key: platform.adminKey,
      requestId: `after-${label}-${randomBytes(4).toString("hex")}-${i}b`,
      maxTokens: 5,
      stream: false,
      timeoutMs: 15_000,
    });
    if (a.outcome.kind === "completed" && b.outcome.kind === "completed") return;
    if (Date.now() > end) expect([a.outcome, b.outcome]).toEqual([{ kind: "completed" }, { kind: "completed" }]);
    await sleep(500);
  }
}

export function summary(records: RequestRecord[]): Record<string, number> {
  const s: Record<string, number> = {};
  for (const r of records) {
    const k = r.outcome.kind === "error" ? `error:${r.outcome.status}${r.outcome.midStream ? ":mid" : ""}` : r.outcome.kind;
    s[k] = (s[k] ?? 0) + 1;
  }
  return s;
}
