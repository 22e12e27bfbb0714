/**
 * Usage metering end to end: one record per request with the engine's token counts and
 * the model version's prices; exact totals after a load run in which clients disconnect
 * (mid-stream, before the first token, while queued, non-streamed): the sums in Postgres
 * equal what the engine (engine-sim's /sim/stats) says it generated, token for token; a
 * gateway stopped with SIGTERM writes what it holds first, and ends a stream that outlasts its
 * grace with an error event, that stream's usage counted; GET /v1/usage groups and validates.
 */
import { readdirSync, readFileSync } from "node:fs";
import OpenAI from "openai";
import { afterAll, describe, expect } from "vitest";
import { createDb, usageTotals } from "@infera/registry";
import { startExtraGateway, waitFor, type Platform } from "@infera/testkit";
import { platformTest } from "@infera/testkit/fixtures";

const MODEL = "meta-llama/Meta-Llama-3-8B-Instruct";

let platform: Platform;
let db: ReturnType<typeof createDb>;
let engineUrl: string;

interface SimStats {
  promptTokens: number;
  completionTokens: number;
  completed: number;
  aborted: number;
  running: number;
  waiting: number;
}

async function engineStats(): Promise<SimStats> {
  return (await (await fetch(`${engineUrl}/sim/stats`)).json()) as SimStats;
}

// Tokens take time (a stream of 100 tokens lasts ~2 s), so disconnects land mid-generation.
const test = platformTest({ label: "usage", env: { SIM_TTFT_MS: "30", SIM_ITL_MS: "20" } });

test.beforeAll(async ({ platform: started }) => {
  platform = started;
  db = createDb(platform.databaseUrl, { max: 2 });
  const dir = `/tmp/infera-test-logs/${platform.redisPrefix}`;
  const agentLog = readdirSync(dir).find((f) => f.endsWith("-agent.log"))!;
  for (const line of readFileSync(`${dir}/${agentLog}`, "utf8").split("\n")) {
    if (line.includes('"agent listening"')) engineUrl = (JSON.parse(line) as { engineUrl: string }).engineUrl;
  }
  expect(engineUrl).toMatch(/^http/);
}, 120_000);

afterAll(async () => {
  await db?.destroy();
});

function body(i: number, stream: boolean): Record<string, unknown> {
  return {
    model: MODEL,
    messages: [{ role: "user", content: `Question number ${i}: tell me about lamb, in detail.` }],
    max_tokens: 40 + (i % 5) * 30,
    stream,
    ...(i % 7 === 0 ? { n: 2, temperature: 1 } : {}),
  };
}

/** One request; `leaveAfterMs` drops the connection at that time (undefined: read to the end). */
async function run(i: number, stream: boolean, leaveAfterMs: number | undefined, key: string, base = platform.openaiURL): Promise<string> {
  const ac = new AbortController();
  const timer = leaveAfterMs === undefined ? undefined : setTimeout(() => ac.abort(), leaveAfterMs);
  try {
    const r = await fetch(`${base}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify(body(i, stream)),
      signal: ac.signal,
    });
    await r.text();
    return r.status === 200 ? "ok" : `status ${r.status}`;
  } catch {
    return "left";
  } finally {
    clearTimeout(timer);
  }
}

describe("usage records", () => {
  test("counts exactly what the engine generated, after a load run with disconnects", async () => {
    const before = await engineStats();
    const totalsBefore = await usageTotals(db, {});
    const outcomes: string[] = [];
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < 90; i++) {
      const stream = i % 4 !== 3;
      // A third leave: at once (queued or before the first token), early, or mid-stream.
      const leave = i % 3 === 0 ? [0, 50, 300, 800, 1500, 2500][(i / 3) % 6] : undefined;
      jobs.push(run(i, stream, leave, platform.adminKey).then((o) => void outcomes.push(o)));
      if (i % 10 === 9) await new Promise((r) => setTimeout(r, 20));
    }
    await Promise.all(jobs);
    expect(outcomes.filter((o) => o === "ok").length).toBeGreaterThanOrEqual(55);
    expect(outcomes.filter((o) => o === "left").length).toBeGreaterThanOrEqual(20);
    // The engine is idle again, and the gateway has written everything.
    await waitFor("the engine to be idle", async () => ((s) => s.running + s.waiting === 0)(await engineStats()));
    const after = await engineStats();
    expect(after.aborted - before.aborted, "some requests were aborted inside the engine").toBeGreaterThan(0);
    const engine = { prompt: after.promptTokens - before.promptTokens, completion: after.completionTokens - before.completionTokens };
    let recorded = { prompt: -1, completion: -1 };
    // Until it matches (usage is written in batches), or the wait gives up and the assertion below shows the difference.
    await waitFor(
      "the usage records to add up",
      async () => {
        const t = await usageTotals(db, {});
        recorded = { prompt: t.promptTokens - totalsBefore.promptTokens, completion: t.completionTokens - totalsBefore.completionTokens };
        return recorded.completion === engine.completion && recorded.prompt === engine.prompt;
      },
      { timeoutMs: 10_000 },
    ).catch(() => {});
    expect(engine.completion).toBeGreaterThan(1000);
    expect(recorded).toEqual(engine);
  });

  test("records one row per request with tokens, status, timing and the model's price", async () => {
    const sdk = new OpenAI({ apiKey: platform.adminKey, baseURL: platform.openaiURL, maxRetries: 0 });
    const { data, request_id } = await sdk.chat.completions
      .create({ model: MODEL, messages: [{ role: "user", content: "price me" }], max_tokens: 9 })
      .withResponse();
    expect(request_id).toBeTruthy();
    // Catalog prices: $0.03 / M input, $0.06 / M output.
    const expected = (data.usage!.prompt_tokens * 0.03 + data.usage!.completion_tokens * 0.06) / 1e6;
    expect((data.usage as unknown as { estimated_cost: number }).estimated_cost).toBeCloseTo(expected, 12);
    const row = await waitFor("its usage row", () => db.selectFrom("usage_records").selectAll().where("request_id", "=", request_id!).executeTakeFirst());
    expect(row).toMatchObject({ model: MODEL, endpoint: "chat", prompt_tokens: data.usage!.prompt_tokens, completion_tokens: 9, status: "ok" });
    expect(Number(row!.cost_usd)).toBeCloseTo(expected, 9);
    expect(row!.duration_ms as number).toBeGreaterThan(0);
  });

  test("a gateway stopped with SIGTERM writes the usage it holds first", async () => {
    // Flushes only at stop: nothing would be written otherwise.
    const gw = await startExtraGateway(platform, { USAGE_FLUSH_MS: "600000" });
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const id = `flush-test-${i}-${Date.now()}`;
      ids.push(id);
      const r = await fetch(`${gw.openaiURL}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${platform.adminKey}`, "x-request-id": id },
        body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: `hello ${i}` }], max_tokens: 3, stream: i % 2 === 0 }),
      });
      expect(r.status).toBe(200);
      await r.text();
    }
    const held = await db.selectFrom("usage_records").select("request_id").where("client_request_id", "in", ids).execute();
    expect(held.length).toBe(0);
    expect(await gw.stop()).toBe(0);
    const written = await db.selectFrom("usage_records").select(["client_request_id", "completion_tokens"]).where("client_request_id", "in", ids).execute();
    expect(written.map((r) => r.client_request_id).sort()).toEqual([...ids].sort());
    expect(written.every((r) => r.completion_tokens === 3)).toBe(true);
  });

  test("a stream that outlasts SHUTDOWN_GRACE_MS ends at the grace with an error event; the usage held is still written and the gateway exits 0", async () => {
    const gw = await startExtraGateway(platform, { USAGE_FLUSH_MS: "600000", SHUTDOWN_GRACE_MS: "1500" });
    const tag = Date.now();
    const headers = (id: string) => ({ "content-type": "application/json", authorization: `Bearer ${platform.adminKey}`, "x-request-id": id });
    const short = await fetch(`${gw.openaiURL}/chat/completions`, {
      method: "POST",
      headers: headers(`short-${tag}`),
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hello" }], max_tokens: 3 }),
    });
    expect(short.status).toBe(200);
    await short.text();
    // 1,000 tokens at 20 ms: 20 s, far past the grace; its client reads on.
    const long = await fetch(`${gw.openaiURL}/chat/completions`, {
      method: "POST",
      headers: headers(`long-${tag}`),
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "a long one" }], max_tokens: 1000, ignore_eos: true, stream: true }),
    });
    expect(long.status).toBe(200);
    const body = long.text();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const t0 = Date.now();
    const code = await gw.stop();
    const stoppedMs = Date.now() - t0;
    const events = (await body).split("\n\n").filter((e) => e.startsWith("data: "));
    const received = events.filter((e) => e.includes('"content":"')).length;
    // Ended at the grace (1.5 s), not waited on until the hard deadline (grace + 5 s) with the usage unwritten.
    expect(code, gw.output().slice(-3000)).toBe(0);
    expect(stoppedMs).toBeLessThan(5_000);
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThan(1000);
    // Its client is told, in OpenAI's error shape, as the stream's last event: retry.
    expect(JSON.parse(events.at(-1)!.slice(6))).toMatchObject({ error: { type: "server_error", code: "service_unavailable" } });
    expect(gw.output()).toContain("drain deadline reached with requests open; ending them");
    const written = await db
      .selectFrom("usage_records")
      .select(["client_request_id", "completion_tokens"])
      .where("client_request_id", "in", [`short-${tag}`, `long-${tag}`])
      .execute();
    const byId = Object.fromEntries(written.map((w) => [w.client_request_id, w.completion_tokens]));
    expect(byId[`short-${tag}`]).toBe(3);
    // The ended stream is counted for what reached its client.
    expect(byId[`long-${tag}`]).toBe(received);
    expect(byId[`long-${tag}`]).toBeLessThan(1000);
  });
});

describe("GET /v1/usage", () => {
  test("groups a tenant's usage by model, day and key, and agrees with the records", async () => {
    const sums = await usageTotals(db, {});
    const byModel = (await (
      await fetch(`${platform.baseURL}/v1/usage?group_by=model`, { headers: { authorization: `Bearer ${platform.adminKey}` } })
    ).json()) as {
      data: { model: string; requests: number; prompt_tokens: number; completion_tokens: number; total_tokens: number; cost_usd: number }[];
      total: { requests: number; prompt_tokens: number; completion_tokens: number };
    };
    expect(byModel.data.map((r) => r.model)).toEqual([MODEL]);
    // Every request so far was the admin tenant's.
    expect(byModel.total).toMatchObject({ requests: sums.requests, prompt_tokens: sums.promptTokens, completion_tokens: sums.completionTokens });
    const byDay = (await (
      await fetch(`${platform.baseURL}/v1/usage?group_by=day&from=${new Date(Date.now() - 86_400_000).toISOString().slice(0, 10)}`, {
        headers: { authorization: `Bearer ${platform.adminKey}` },
      })
    ).json()) as { data: { day: string; requests: number }[] };
    expect(byDay.data[0]?.day).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(byDay.data.reduce((n, r) => n + r.requests, 0)).toBe(sums.requests);
    const byKey = (await (await fetch(`${platform.baseURL}/v1/usage?group_by=key`, { headers: { authorization: `Bearer ${platform.adminKey}` } })).json()) as {
      data: { key_id: string }[];
    };
    expect(byKey.data.length).toBe(1);
    // A window in the past holds nothing.
    const past = (await (
      await fetch(`${platform.baseURL}/v1/usage?from=1000000000&to=1000003600`, { headers: { authorization: `Bearer ${platform.adminKey}` } })
    ).json()) as { data: unknown[] };
    expect(past.data).toEqual([]);
  });

  test("answers bad parameters with 400 naming the parameter", async () => {
    for (const [q, param] of [
      ["group_by=tenant", "group_by"],
      ["from=yesterday", "from"],
      ["to=2026-13-45T99", "to"],
      ["from=1700000000&to=1600000000", "from"],
      ["bogus=1", "bogus"],
    ] as const) {
      const r = await fetch(`${platform.baseURL}/v1/usage?${q}`, { headers: { authorization: `Bearer ${platform.adminKey}` } });
      expect(r.status, q).toBe(400);
      expect(((await r.json()) as { error: { param: string } }).error.param, q).toBe(param);
    }
    expect((await fetch(`${platform.baseURL}/v1/usage`)).status).toBe(401);
  });
});
