/**
 * What an operator reads about a deployment through the deploy API, against the platform
 * as `pnpm start` runs it: `/replicas` while the engine comes up (starting, with the reason)
 * and once it serves (ready, with node, GPU, heartbeat and load); after its engine is
 * killed, why it restarted; `/events` a page at a time; `/stats` in the hosted provider's
 * shape from real requests; `/logs` tailing and following the engine's and agent's log lines.
 * Another tenant's key gets 404s, and bad parameters a 400 naming them.
 */
import { readdirSync, readFileSync } from "node:fs";
import OpenAI from "openai";
import { afterAll, describe, expect } from "vitest";
import { createApiKey, createDb, createTenant } from "@infera/registry";
import { type Platform, waitFor } from "@infera/testkit";
import { platformTest } from "@infera/testkit/fixtures";

const STARTUP_DELAY_MS = 4000;

let platform: Platform;
let db: ReturnType<typeof createDb>;
let deployId = "";
let otherKey = "";

interface ReplicaOut {
  replica_id: string;
  phase: string;
  ready: boolean;
  reason: string | null;
  node: string | null;
  gpu: string | null;
  num_gpus: number | null;
  since: string | null;
  last_heartbeat: string | null;
  load: { running: number; waiting: number; kv_cache_usage: number } | null;
  restarts: number;
}
interface ReplicasOut {
  object: string;
  deploy_id: string;
  runtime: string | null;
  data: ReplicaOut[];
}
interface EventOut {
  id: string;
  deploy_id: string;
  from_status: string | null;
  to_status: string;
  reason: string | null;
  created_at: string;
}
interface EventsOut {
  object: string;
  data: EventOut[];
  first_id: string | null;
  last_id: string | null;
  has_more: boolean;
}
interface ErrorOut {
  error: { message: string; param: string | null };
}

const test = platformTest({
  label: "deploy-observability",
  env: { SIM_STARTUP_DELAY_MS: String(STARTUP_DELAY_MS), LOG_LEVEL: "debug" },
  readyTimeoutMs: 120_000,
});

test.beforeAll(async ({ platform: started }) => {
  platform = started;
  db = createDb(platform.databaseUrl, { max: 2 });
  const other = await createTenant(db, "elsewhere");
  otherKey = (await createApiKey(db, { tenantId: other.id, name: "other", scopes: ["deploy", "inference"] })).secret;
}, 180_000);

afterAll(async () => {
  await db?.destroy();
});

async function api<T = unknown>(method: string, path: string, body?: unknown, key = platform.adminKey): Promise<{ status: number; json: T }> {
  const headers: Record<string, string> = { authorization: `Bearer ${key}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(`${platform.baseURL}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, json: (text ? JSON.parse(text) : undefined) as T };
}

const replicas = async () => {
  const r = await api<ReplicasOut>("GET", `/deploy/${deployId}/replicas`);
  expect(r.status).toBe(200);
  return r.json;
};

/** The pid of a replica's process of one role (engine-sim or agent), found by its environment. */
function pidOf(replicaId: string, role: "engine" | "agent"): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const env = readFileSync(`/proc/${entry}/environ`, "utf8").split("\0");
      if (!env.includes(`INFERA_REPLICA_ID=${replicaId}`)) continue;
      if (env.some((e) => e.startsWith("SIM_MODEL=")) === (role === "engine")) return Number(entry);
    } catch {
      // gone, or not ours
    }
  }
  return undefined;
}

describe("a deployment's replicas, events, stats and logs", () => {
  test("shows a replica starting with the reason, then ready with node, GPU, heartbeat and load", async () => {
    const created = await api<{ deploy_id: string }>("POST", "/deploy/llm", { model_name: "observed", gpu: "L4", num_gpus: 2, max_batch_size: 4 });
    expect(created.status).toBe(200);
    deployId = created.json.deploy_id;

    // While engine-sim waits out its startup delay, its /health is 503: the agent reports unhealthy.
    const starting = await waitFor(
      "a starting replica with a reason",
      async () => {
        const r = (await replicas()).data[0];
        return r && r.phase === "starting" && r.reason ? r : undefined;
      },
      { timeoutMs: 60_000 },
    );
    expect(starting.ready).toBe(false);
    expect(starting.reason).toMatch(/not healthy yet|not reported yet|starting/);

    const ready = await waitFor(
      "a ready replica",
      async () => {
        const r = (await replicas()).data[0];
        return r?.ready ? r : undefined;
      },
      { timeoutMs: STARTUP_DELAY_MS + 60_000 },
    );
    expect(ready).toMatchObject({ phase: "ready", reason: null, gpu: "L4", num_gpus: 2, restarts: 0 });
    expect(ready.replica_id).toMatch(new RegExp(`^${deployId}-r\\d+$`));
    expect(ready.node).toBeTruthy();
    expect(Date.now() - Date.parse(ready.last_heartbeat!)).toBeLessThan(10_000);
    expect(Date.parse(ready.since!)).toBeLessThanOrEqual(Date.parse(ready.last_heartbeat!));
    expect(ready.load).toEqual({ running: 0, waiting: 0, kv_cache_usage: expect.any(Number) });
    expect((await replicas()).runtime).toBe("local");
  }, 120_000);

  test("after its engine is killed, says it restarted and why, until it serves again", async () => {
    await waitFor("running", async () => (await api<{ status: string }>("GET", `/deploy/${deployId}`)).json.status === "running", { timeoutMs: 60_000 });
    const id = (await replicas()).data[0]!.replica_id;
    const pid = pidOf(id, "engine");
    expect(pid).toBeGreaterThan(0);
    process.kill(pid!, "SIGKILL");
    const restarting = await waitFor(
      "a restarting replica",
      async () => {
        const r = (await replicas()).data.find((x) => x.replica_id === id);
        return r && !r.ready && r.reason?.includes("engine exited (SIGKILL)") ? r : undefined;
      },
      { timeoutMs: 60_000 },
    );
    expect(restarting.phase).toBe("starting");
    const back = await waitFor(
      "ready again",
      async () => {
        const r = (await replicas()).data.find((x) => x.replica_id === id);
        return r?.ready ? r : undefined;
      },
      { timeoutMs: STARTUP_DELAY_MS + 60_000 },
    );
    expect(back.restarts).toBe(1);
    expect(back.reason).toBeNull();
  }, 120_000);

  test("pages through the lifecycle history in order, both ways", async () => {
    const all = await api<EventsOut>("GET", `/deploy/${deployId}/events?limit=100`);
    expect(all.status).toBe(200);
    expect(all.json.object).toBe("list");
    expect(all.json.has_more).toBe(false);
    const moves = all.json.data.map((e) => e.to_status);
    expect(moves.slice(0, 4)).toEqual(["initializing", "downloading", "deploying", "running"]);
    expect(all.json.data.every((e) => e.deploy_id === deployId)).toBe(true);

    const pages: EventOut[] = [];
    let after: string | null = null;
    for (let i = 0; i < 10; i++) {
      const page: { status: number; json: EventsOut } = await api<EventsOut>("GET", `/deploy/${deployId}/events?limit=2${after ? `&after=${after}` : ""}`);
      expect(page.status).toBe(200);
      expect(page.json.data.length).toBeLessThanOrEqual(2);
      pages.push(...page.json.data);
      after = page.json.last_id;
      if (!page.json.has_more) break;
    }
    expect(pages.map((e) => e.id)).toEqual(all.json.data.map((e) => e.id));

    const newest = await api<EventsOut>("GET", `/deploy/${deployId}/events?order=desc&limit=1`);
    expect(newest.json.data[0]?.id).toBe(all.json.data.at(-1)?.id);
    expect(newest.json.has_more).toBe(all.json.data.length > 1);
  });

  test("sums real requests into the provider's stats shape", async () => {
    const openai = new OpenAI({ apiKey: platform.adminKey, baseURL: platform.openaiURL, maxRetries: 0 });
    let prompt = 0;
    let completion = 0;
    for (let i = 0; i < 3; i++) {
      const r = await openai.chat.completions.create({ model: `deploy_id:${deployId}`, messages: [{ role: "user", content: `Hello ${i}` }], max_tokens: 4 });
      prompt += r.usage!.prompt_tokens;
      completion += r.usage!.completion_tokens;
    }
    const stats = await waitFor(
      "the usage written",
      async () => {
        const s = await api<Record<string, number>>("GET", `/deploy/${deployId}/stats?from=now-1h`);
        expect(s.status).toBe(200);
        return s.json.requests === 3 ? s.json : undefined;
      },
      { timeoutMs: 60_000 },
    );
    expect(stats).toMatchObject({ requests: 3, input_tokens: prompt, output_tokens: completion, total_tokens: prompt + completion, errors: 0 });
    for (const k of ["total_time", "total_amount", "avg_time", "avg95_time", "p50_time", "p99_time", "avg_ttft", "avg95_ttft", "from", "to"]) {
      expect(typeof stats[k], k).toBe("number");
    }
    expect(stats.avg_time).toBeGreaterThan(0);
    expect(stats.avg95_time).toBeGreaterThanOrEqual(stats.p50_time!);
    // A window before the requests holds none of them.
    const earlier = await api<Record<string, number>>("GET", `/deploy/${deployId}/stats?from=now-2h&to=now-1h`);
    expect(earlier.json).toMatchObject({ requests: 0, input_tokens: 0, errors: 0 });
  });

  test("tails the engine's and the agent's log lines, and follows new ones", async () => {
    const r = await fetch(`${platform.baseURL}/deploy/${deployId}/logs?tail=5`, { headers: { authorization: `Bearer ${platform.adminKey}` } });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toContain("application/x-ndjson");
    const lines = (await r.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { replica_id: string; source: string; line: string });
    expect(new Set(lines.map((l) => l.source))).toEqual(new Set(["engine", "agent"]));
    expect(lines.every((l) => l.replica_id.startsWith(`${deployId}-r`))).toBe(true);
    // At most 5 per file (one replica: its engine and agent logs).
    expect(lines.filter((l) => l.source === "agent").length).toBeLessThanOrEqual(5);

    // Follow: a request sent now shows up in the agent's log as it is written.
    const abort = new AbortController();
    const follow = await fetch(`${platform.baseURL}/deploy/${deployId}/logs?tail=0&follow=true&format=text`, {
      headers: { authorization: `Bearer ${platform.adminKey}` },
      signal: abort.signal,
    });
    expect(follow.status).toBe(200);
    const reader = follow.body!.getReader();
    const openai = new OpenAI({ apiKey: platform.adminKey, baseURL: platform.openaiURL, maxRetries: 0 });
    // The agent logs the platform's own request id, the x-request-id of the answer.
    const { response } = await openai.chat.completions
      .create({ model: `deploy_id:${deployId}`, messages: [{ role: "user", content: "follow me" }], max_tokens: 2 })
      .withResponse();
    const requestId = response.headers.get("x-request-id")!;
    expect(requestId).toMatch(/^req_[0-9a-f]{24}$/);
    let text = "";
    const deadline = Date.now() + 20_000;
    while (!text.includes(requestId) && Date.now() < deadline) {
      const chunk = await Promise.race([reader.read(), new Promise<null>((res) => setTimeout(() => res(null), 1000))]);
      if (chunk && !chunk.done) text += new TextDecoder().decode(chunk.value);
    }
    abort.abort();
    expect(text).toContain(requestId);
    expect(text.split("\n").find((l) => l.includes(requestId))).toMatch(new RegExp(`^${deployId}-r\\d+ agent `));
  }, 60_000);

  test("answers 404 for another tenant's deployment and an unknown replica, and 400 naming a bad parameter", async () => {
    for (const path of ["events", "stats?from=now-1h", "replicas", "logs"]) {
      const r = await api<ErrorOut>("GET", `/deploy/${deployId}/${path}`, undefined, otherKey);
      expect(r.status, path).toBe(404);
      expect(r.json.error.param).toBe("deploy_id");
    }
    const replica = await api<ErrorOut>("GET", `/deploy/${deployId}/logs?replica=${deployId}-r999`);
    expect(replica.status).toBe(404);
    expect(replica.json.error.param).toBe("replica");

    const cases: [string, string][] = [
      ["events?limit=0", "limit"],
      ["events?limit=abc", "limit"],
      ["events?order=sideways", "order"],
      ["events?colour=red", "colour"],
      ["stats", "from"],
      ["stats?from=yesterday", "from"],
      ["stats?from=now&to=now-1h", "from"],
      ["logs?tail=-1", "tail"],
      ["logs?follow=maybe", "follow"],
    ];
    for (const [path, param] of cases) {
      const r = await api<ErrorOut>("GET", `/deploy/${deployId}/${path}`);
      expect(r.status, path).toBe(400);
      expect(r.json.error.param, path).toBe(param);
    }
  });
});
