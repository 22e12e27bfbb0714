/**
 * A batch of a few hundred lines running while the scheduler is SIGKILLed (a second one
 * stands by and takes over, as in control-plane-faults) and then Redis is restarted (a
 * private redis-server, append-only as production runs it, as in store-faults). The batch
 * must complete with every line answered exactly once: the output file holds each custom_id
 * once, and batch_lines and the usage records each count one per line.
 */
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb } from "@infera/registry";
import { type ExtraProcess, type Platform, type PrivateStore, servicePids, signal, startLike, startPrivateRedis, waitFor, waitForExit } from "@infera/testkit";
import { MODEL, sleep, startFaultPlatform } from "./harness.ts";

const LINES = 300;

let platform: Platform;
let redis: PrivateStore;
let standby: ExtraProcess | undefined;
let client: OpenAI;

beforeAll(async () => {
  redis = await startPrivateRedis();
  platform = await startFaultPlatform("fault-batch", 1, {
    redisUrl: redis.url,
    env: { BATCH_RECONCILE_MS: "1000", BATCH_CHUNK_LINES: "10", BATCH_MAX_INFLIGHT: "8" },
  });
  client = new OpenAI({ apiKey: platform.adminKey, baseURL: platform.openaiURL, maxRetries: 3 });
}, 300_000);
afterAll(async () => {
  await standby?.stop();
  await platform?.stop();
  await redis?.stop();
}, 120_000);

describe("fault: the scheduler killed and Redis restarted while a batch runs", () => {
  let batchId = "";
  let outputFileId: string | null = null;
  let errorFileId: string | null = null;

  it("the batch completes through both faults", async () => {
    const lines = Array.from({ length: LINES }, (_, n) =>
      JSON.stringify({
        custom_id: `line-${n}`,
        method: "POST",
        url: "/v1/chat/completions",
        body: { model: MODEL, messages: [{ role: "user", content: `Count to ${n}` }], max_tokens: 30 },
      }),
    );
    const file = await client.files.create({ file: await toFile(Buffer.from(`${lines.join("\n")}\n`), "faults.jsonl"), purpose: "batch" });
    const created = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
    batchId = created.id;
    await waitFor("a tenth of the lines answered", async () => (await client.batches.retrieve(batchId)).request_counts!.completed >= LINES / 10, {
      timeoutMs: 120_000,
      intervalMs: 200,
    });

    const [schedulerPid] = servicePids(platform.pid, "scheduler");
    expect(schedulerPid).toBeDefined();
    standby = startLike(schedulerPid!, "scheduler");
    await sleep(2000);
    expect(signal(schedulerPid!, "SIGKILL")).toBe(true);
    await waitForExit(schedulerPid!, 5_000);
    const atKill = (await client.batches.retrieve(batchId)).request_counts!;
    console.log("[batch faults] answered at the scheduler kill", atKill);
    expect(atKill.completed + atKill.failed).toBeLessThan(LINES);

    await sleep(3000);
    await redis.restart(1500);
    console.log("[batch faults] answered after the Redis restart", (await client.batches.retrieve(batchId)).request_counts);

    let b = await client.batches.retrieve(batchId);
    await waitFor(
      "the batch to end",
      async () => {
        b = await client.batches.retrieve(batchId);
        return ["completed", "failed", "expired", "cancelled"].includes(b.status);
      },
      { timeoutMs: 240_000, intervalMs: 500 },
    );
    console.log("[batch faults] ended", b.status, b.request_counts);
    if (b.request_counts!.failed > 0) {
      // What a line recorded as failed got: the status and the answer, to tell a platform fault from a bad line.
      const db = createDb(platform.databaseUrl, { max: 1 });
      try {
        const failed = await db.selectFrom("batch_lines").selectAll().where("batch_id", "=", batchId).where("status", "=", "failed").execute();
        console.log("[batch faults] failed lines", JSON.stringify(failed, null, 1));
      } finally {
        await db.destroy();
      }
    }
    expect(b.status).toBe("completed");
    expect(b.request_counts).toEqual({ total: LINES, completed: LINES, failed: 0 });
    outputFileId = b.output_file_id ?? null;
    errorFileId = b.error_file_id ?? null;
  }, 420_000);

  it("invariant: the output file has each custom_id exactly once, and no error file", async () => {
    expect(errorFileId).toBeNull();
    const text = await (await client.files.content(outputFileId!)).text();
    const ids = text
      .split("\n")
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { custom_id: string; response: { status_code: number } }).custom_id);
    expect(ids).toHaveLength(LINES);
    expect(new Set(ids)).toEqual(new Set(Array.from({ length: LINES }, (_, n) => `line-${n}`)));
  });

  it("invariant: batch_lines and usage each count one per line, none twice", async () => {
    const db = createDb(platform.databaseUrl, { max: 1 });
    try {
      const lines = await db.selectFrom("batch_lines").select(["line_no", "request_id"]).where("batch_id", "=", batchId).execute();
      expect(lines).toHaveLength(LINES);
      expect(new Set(lines.map((l) => l.line_no)).size).toBe(LINES);
      const usageOf = () => db.selectFrom("usage_records").select("request_id").where("batch_id", "=", batchId).execute();
      // The gateway writes usage in batches (USAGE_FLUSH_MS): the last lines' records follow their answers.
      await waitFor("every line's usage record", async () => (await usageOf()).length >= LINES, { timeoutMs: 15_000, intervalMs: 200 }).catch(() => {});
      const usage = await usageOf();
      expect(usage).toHaveLength(LINES);
      expect(new Set(usage.map((u) => u.request_id))).toEqual(new Set(lines.map((l) => l.request_id)));
    } finally {
      await db.destroy();
    }
  });
});
