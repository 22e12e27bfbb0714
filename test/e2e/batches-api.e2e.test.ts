/**
 * The Batch API end to end with the official `openai` client against the running platform
 * (gateway, scheduler, engine-sim as `pnpm start` runs them): `files.create` → `batches.create`
 * → `batches.retrieve` until completed → `files.content` of the output file, one answer per
 * custom_id, the engine's refusals in the error file; `batches.list`; `batches.cancel` on a
 * running batch ends `cancelled` with partial output; `output_expires_after` sets the output
 * files' expiry; another tenant sees none of it; bad
 * input is refused naming the field with nothing created; usage is one record per answered
 * line, marked with its batch, at the batch price.
 */
import OpenAI, { type APIError, toFile } from "openai";
import { describe, expect } from "vitest";
import { createDb } from "@infera/registry";
import type { Platform } from "@infera/testkit";
import { newTenantKey, waitFor } from "@infera/testkit";
import { platformTest } from "@infera/testkit/fixtures";
import { expectSchema } from "../openapi/validate.ts";

const MODEL = "meta-llama/Meta-Llama-3-8B-Instruct";

let platform: Platform;
let client: OpenAI;
let db: ReturnType<typeof createDb>;

// Engine-sim takes 4 ms a token, so a long batch is still running when it is cancelled.
const test = platformTest({
  label: "batches-api",
  env: { BATCH_RECONCILE_MS: "1000", BATCH_CHUNK_LINES: "5", BATCH_MAX_INFLIGHT: "4", SIM_ITL_MS: "4" },
});

test.beforeAll(async ({ platform: started }) => {
  [platform, db] = [started, createDb(started.databaseUrl, { max: 2 })];
  client = new OpenAI({ baseURL: started.openaiURL, apiKey: started.adminKey, maxRetries: 0 });
}, 240_000);
test.afterAll(() => db?.destroy());

const line = (id: string, body: Record<string, unknown> = {}, url = "/v1/chat/completions") =>
  JSON.stringify({ custom_id: id, method: "POST", url, body: { model: MODEL, messages: [{ role: "user", content: `Hello ${id}` }], max_tokens: 8, ...body } });
const upload = async (lines: string[], c = client) =>
  c.files.create({ file: await toFile(Buffer.from(`${lines.join("\n")}\n`), "batch.jsonl"), purpose: "batch" });

const settle = async (id: string, c = client, timeoutMs = 90_000) => {
  let b = await c.batches.retrieve(id);
  await waitFor(
    `batch ${id} to end`,
    async () => {
      b = await c.batches.retrieve(id);
      return ["completed", "failed", "expired", "cancelled"].includes(b.status);
    },
    { timeoutMs, intervalMs: 250 },
  );
  return b;
};

const contentLines = async (fileId: string | null | undefined) => {
  if (!fileId) return [];
  const text = await (await client.files.content(fileId)).text();
  return text
    .split("\n")
    .filter(Boolean)
    .map(
      (l) =>
        JSON.parse(l) as {
          id: string;
          custom_id: string;
          response: { status_code: number; request_id: string; body: Record<string, unknown> } | null;
          error: { code: string } | null;
        },
    );
};

const batchCount = async () =>
  Number(
    (
      await db
        .selectFrom("batches")
        .select((eb) => eb.fn.countAll().as("n"))
        .executeTakeFirstOrThrow()
    ).n,
  );

let firstBatchId: string;

describe("the Batch API, with the official client", () => {
  test("a batch runs to completed: one answer per custom_id in the output file, the engine's refusal in the error file, counts as it ran", async () => {
    const ids = ["a", "b", "c", "d", "e", "f", "g"];
    // `g` asks for more tokens than the model's context holds: the engine refuses it (400).
    const f = await upload(ids.map((id) => (id === "g" ? line(id, { max_tokens: 100_000 }) : line(id))));
    const created = await client.batches.create({
      input_file_id: f.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
      metadata: { job: "nightly" },
    });
    firstBatchId = created.id;
    expect(created).toMatchObject({
      id: expect.stringMatching(/^batch_/),
      object: "batch",
      endpoint: "/v1/chat/completions",
      input_file_id: f.id,
      completion_window: "24h",
      status: "validating",
      metadata: { job: "nightly" },
      request_counts: { total: 7, completed: 0, failed: 0 },
    });
    expect(created.expires_at! - created.created_at).toBe(86_400);
    const b = await settle(created.id);
    expect(b.status).toBe("completed");
    expectSchema("Batch", created);
    expectSchema("Batch", b);
    expect(b.request_counts).toEqual({ total: 7, completed: 6, failed: 1 });
    for (const at of [b.in_progress_at, b.finalizing_at, b.completed_at]) expect(at).toBeGreaterThanOrEqual(created.created_at);
    const out = await contentLines(b.output_file_id);
    expect(out.map((l) => l.custom_id).sort()).toEqual(["a", "b", "c", "d", "e", "f"]);
    for (const l of out) {
      expect(l).toMatchObject({
        id: expect.stringMatching(/^batch_req_/),
        error: null,
        response: { status_code: 200, request_id: expect.stringMatching(/^req_[0-9a-f]{24}$/) },
      });
      expect((l.response!.body.choices as { message: { content: string } }[])[0]!.message.content.length).toBeGreaterThan(0);
    }
    const err = await contentLines(b.error_file_id);
    expect(err).toHaveLength(1);
    expect(err[0]).toMatchObject({
      custom_id: "g",
      response: { status_code: 400, body: { error: { message: expect.stringContaining("maximum context length") } } },
    });
    const outFile = await client.files.retrieve(b.output_file_id!);
    expect(outFile.purpose).toBe("batch_output");
  });

  test("output_expires_after: the output and error files expire that long after they were written; without it they are kept", async () => {
    const f = await upload([line("ok"), line("refused", { max_tokens: 100_000 })]);
    const created = await client.batches.create({
      input_file_id: f.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
      output_expires_after: { anchor: "created_at", seconds: 7200 },
    });
    const b = await settle(created.id);
    expect(b.status).toBe("completed");
    for (const id of [b.output_file_id!, b.error_file_id!]) {
      const file = await client.files.retrieve(id);
      expect(file.expires_at! - file.created_at, id).toBe(7200);
    }
    // The first batch named none: its output file has no expiry.
    expect((await client.files.retrieve((await client.batches.retrieve(firstBatchId)).output_file_id!)).expires_at ?? null).toBeNull();
  });

  test("usage: one record per answered line, marked with its batch, at half the model's price", async () => {
    const rows = await db
      .selectFrom("usage_records")
      .select(["request_id", "prompt_tokens", "completion_tokens", "cost_usd", "batch_id"])
      .where("batch_id", "=", firstBatchId)
      .execute();
    expect(rows).toHaveLength(6);
    expect(new Set(rows.map((r) => r.request_id)).size).toBe(6);
    const out = await contentLines((await client.batches.retrieve(firstBatchId)).output_file_id);
    expect(rows.map((r) => r.request_id).sort()).toEqual(out.map((l) => l.response!.request_id).sort());
    const price = await db
      .selectFrom("model_versions as v")
      .innerJoin("models as m", "m.id", "v.model_id")
      .select(["v.price_input_per_m", "v.price_output_per_m", "v.batch_price_factor"])
      .where("m.name", "=", MODEL)
      .executeTakeFirstOrThrow();
    expect(Number(price.batch_price_factor)).toBe(0.5);
    for (const r of rows) {
      const full = (r.prompt_tokens * Number(price.price_input_per_m) + r.completion_tokens * Number(price.price_output_per_m)) / 1e6;
      expect(Number(r.cost_usd)).toBeCloseTo(full * 0.5, 9);
      expect(Number(r.cost_usd)).toBeGreaterThan(0);
    }
  });

  test("a running batch cancelled ends cancelled: what was answered in the output, the rest batch_cancelled", async () => {
    const lines = Array.from({ length: 120 }, (_, n) => line(`c${n}`, { max_tokens: 60 }));
    const f = await upload(lines);
    const b = await client.batches.create({ input_file_id: f.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
    await waitFor("a few lines answered", async () => (await client.batches.retrieve(b.id)).request_counts!.completed >= 3, {
      timeoutMs: 60_000,
      intervalMs: 100,
    });
    const cancelling = await client.batches.cancel(b.id);
    expect(["cancelling", "cancelled"]).toContain(cancelling.status);
    const done = await settle(b.id);
    expect(done.status).toBe("cancelled");
    expect(done.cancelled_at).toBeGreaterThanOrEqual(done.cancelling_at!);
    const out = await contentLines(done.output_file_id);
    const err = await contentLines(done.error_file_id);
    expect(out.length).toBeGreaterThanOrEqual(3);
    expect(out.length).toBeLessThan(120);
    expect(err.every((l) => l.error?.code === "batch_cancelled" && l.response === null)).toBe(true);
    expect(new Set([...out, ...err].map((l) => l.custom_id)).size).toBe(120);
    expect(done.request_counts).toEqual({ total: 120, completed: out.length, failed: err.length });
    // Cancelling again answers the batch as it is; a finished batch cannot be cancelled.
    expect((await client.batches.cancel(b.id)).status).toBe("cancelled");
    await expect(client.batches.cancel(firstBatchId)).rejects.toMatchObject({ status: 409 });
  });

  test("list pages newest first with after and limit", async () => {
    const all: string[] = [];
    for await (const b of client.batches.list({ limit: 1 })) all.push(b.id);
    expect(all.length).toBeGreaterThanOrEqual(2);
    expect(all.at(-1)).toBe(firstBatchId);
    const page = await client.batches.list({ limit: 1 });
    expectSchema("ListBatchesResponse", {
      object: "list",
      data: page.data,
      first_id: page.data[0]?.id,
      last_id: page.data.at(-1)?.id,
      has_more: page.has_more,
    });
    expect(page.data).toHaveLength(1);
    expect(page.has_more).toBe(true);
    const next = await client.batches.list({ limit: 1, after: page.data[0]!.id });
    expect(next.data[0]!.id).toBe(all[1]);
  });

  test("another tenant sees none of it: retrieve and cancel are 404, its list is empty, the files are not its to batch", async () => {
    const other = new OpenAI({ apiKey: await newTenantKey(platform), baseURL: platform.openaiURL, maxRetries: 0 });
    await expect(other.batches.retrieve(firstBatchId)).rejects.toMatchObject({ status: 404 });
    await expect(other.batches.cancel(firstBatchId)).rejects.toMatchObject({ status: 404 });
    expect((await other.batches.list()).data).toEqual([]);
    const mine = (await client.batches.retrieve(firstBatchId)).input_file_id;
    const before = await batchCount();
    await expect(other.batches.create({ input_file_id: mine, endpoint: "/v1/chat/completions", completion_window: "24h" })).rejects.toMatchObject({
      status: 404,
      error: { param: "input_file_id" },
    });
    expect(await batchCount()).toBe(before);
  });

  test("bad input is refused naming the field, and creates nothing", async () => {
    const f = await upload([line("x"), line("y")]);
    const before = await batchCount();
    const refused = async (body: Parameters<typeof client.batches.create>[0]) => {
      try {
        await client.batches.create(body);
      } catch (e) {
        return e as APIError;
      }
      throw new Error("accepted");
    };
    const wrongEndpoint = await refused({ input_file_id: f.id, endpoint: "/v1/embeddings", completion_window: "24h" });
    expect(wrongEndpoint.status).toBe(400);
    expect(wrongEndpoint.error).toMatchObject({ param: "endpoint", message: expect.stringMatching(/^Line 1: .*\/v1\/chat\/completions/) });
    const unknownFile = await refused({ input_file_id: "file-doesnotexist0000000000", endpoint: "/v1/chat/completions", completion_window: "24h" });
    expect(unknownFile.status).toBe(404);
    expect(unknownFile.error).toMatchObject({ param: "input_file_id" });
    const badWindow = await refused({ input_file_id: f.id, endpoint: "/v1/chat/completions", completion_window: "1h" as "24h" });
    expect(badWindow.status).toBe(400);
    expect(badWindow.error).toMatchObject({ param: "completion_window" });
    const badEndpoint = await refused({ input_file_id: f.id, endpoint: "/v1/images" as "/v1/embeddings", completion_window: "24h" });
    expect(badEndpoint.error).toMatchObject({ param: "endpoint" });
    for (const output_expires_after of [
      { anchor: "created_at" as const, seconds: 60 },
      { anchor: "created_at" as const, seconds: 31 * 86_400 },
      { anchor: "completed_at" as "created_at", seconds: 7200 },
    ]) {
      const badExpiry = await refused({ input_file_id: f.id, endpoint: "/v1/chat/completions", completion_window: "24h", output_expires_after });
      expect(badExpiry.status, JSON.stringify(output_expires_after)).toBe(400);
      expect(badExpiry.error).toMatchObject({ param: expect.stringContaining("output_expires_after") });
    }
    await expect(client.batches.retrieve("batch_unknown")).rejects.toMatchObject({ status: 404 });
    expect(await batchCount()).toBe(before);
  });
});
