/**
 * Custom LLM deployments end to end, against the platform as `pnpm start` runs it: the
 * deploy API (hosted provider's shape), the lifecycle the reconciler drives through the
 * local runtime (engine-sim + agent processes), and inference by deploy_id, name and
 * name:version with the official `openai` client — before the deployment runs, while it
 * is stopped, at zero replicas, and after it is deleted. The event history in Postgres
 * must show every step in order; a second tenant must see nothing of it.
 */
import { readdirSync, readFileSync } from "node:fs";
import { Redis } from "ioredis";
import OpenAI from "openai";
import { afterAll, describe, expect } from "vitest";
import { queueKeys } from "@infera/queue";
import { createApiKey, createDb, createTenant, listDeploymentEvents } from "@infera/registry";
import { waitFor, type Platform } from "@infera/testkit";
import { platformTest } from "@infera/testkit/fixtures";

const HF_TOKEN = "hf_e2eSecretTokenThatMustNeverShow";
const STARTUP_DELAY_MS = 3000;

let platform: Platform;
let db: ReturnType<typeof createDb>;
let openai: OpenAI;
let otherKey: string;
let otherOpenai: OpenAI;
let deployId = "";
let redis: Redis;

interface DeploymentOut {
  deploy_id: string;
  model_name: string;
  version: string;
  task: string;
  status: string;
  fail_reason: string | null;
  created_at: string;
  updated_at: string;
  instances: { running: number; pending: number };
  config: {
    gpu: string;
    num_gpus: number;
    max_batch_size: number;
    engine: string;
    hf: { repo: string; revision: string | null; has_token: boolean } | null;
    extra_args: string[];
  };
  settings: { min_instances: number; max_instances: number };
}
interface ErrorOut {
  error: { message: string; type: string; param: string | null; code: string | null };
}

const test = platformTest({
  label: "deployments",
  env: {
    // Engines take a while to come up, so a request can be sent while the deployment deploys.
    SIM_STARTUP_DELAY_MS: String(STARTUP_DELAY_MS),
    SCALE_TO_ZERO_IDLE_MS: "2000",
    SECRETS_KEY: "e2e-secrets-key",
  },
  readyTimeoutMs: 120_000,
});

test.beforeAll(async ({ platform: started }) => {
  platform = started;
  db = createDb(platform.databaseUrl, { max: 2 });
  redis = new Redis(platform.redisUrl);
  openai = new OpenAI({ apiKey: platform.adminKey, baseURL: platform.openaiURL, maxRetries: 0, timeout: 90_000 });
  const other = await createTenant(db, "other-co");
  otherKey = (await createApiKey(db, { tenantId: other.id, name: "other", scopes: ["deploy", "inference"] })).secret;
  otherOpenai = new OpenAI({ apiKey: otherKey, baseURL: platform.openaiURL, maxRetries: 0 });
}, 180_000);

afterAll(async () => {
  redis?.disconnect();
  await db?.destroy();
});

async function api<T = unknown>(method: string, path: string, body?: unknown, key = platform.adminKey): Promise<{ status: number; json: T; headers: Headers }> {
  const headers: Record<string, string> = { authorization: `Bearer ${key}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(`${platform.baseURL}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, json: (text ? JSON.parse(text) : undefined) as T, headers: r.headers };
}

async function get(id = deployId, key = platform.adminKey): Promise<DeploymentOut> {
  const r = await api<DeploymentOut>("GET", `/deploy/${id}`, undefined, key);
  expect(r.status).toBe(200);
  return r.json;
}

/** Processes (engine-sim, agent) whose environment names the deployment. */
function processesOf(id: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const env = readFileSync(`/proc/${entry}/environ`, "utf8");
      if (env.split("\0").includes(`INFERA_DEPLOYMENT_ID=${id}`)) pids.push(Number(entry));
    } catch {
      // gone, or not ours
    }
  }
  return pids;
}

function chat(model: string, client = openai) {
  return client.chat.completions.create({ model, messages: [{ role: "user", content: "Hello there" }], max_tokens: 5 });
}

async function rawChat(model: string, key = platform.adminKey) {
  const r = await fetch(`${platform.openaiURL}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 3 }),
  });
  return { status: r.status, headers: r.headers, json: (await r.json()) as ErrorOut };
}

/** Everything a rejected request must leave as it was. */
async function snapshot() {
  const row = await db.selectFrom("deployments").selectAll().where("id", "=", deployId).executeTakeFirstOrThrow();
  const counts = await Promise.all(
    (["deployments", "models", "model_versions", "deployment_events"] as const).map(async (t) =>
      Number(
        (
          await db
            .selectFrom(t)
            .select((eb) => eb.fn.countAll().as("n"))
            .executeTakeFirstOrThrow()
        ).n,
      ),
    ),
  );
  return { row: JSON.stringify(row), counts };
}

describe("a custom LLM deployment's life", () => {
  test("deploys at once and answers a request sent by deploy_id before it runs, once it does", async () => {
    const created = await api<{ deploy_id: string }>("POST", "/deploy/llm", {
      model_name: "my-llama",
      gpu: "A100-80GB",
      max_batch_size: 8,
      hf: { repo: "meta-llama/Meta-Llama-3-8B-Instruct", revision: "main", token: HF_TOKEN },
      extra_args: ["--enable-prefix-caching"],
    });
    expect(created.status).toBe(200);
    expect(created.json.deploy_id).toMatch(/^dep_/);
    deployId = created.json.deploy_id;

    const before = await get();
    expect(["initializing", "downloading", "deploying"]).toContain(before.status);
    expect(before.model_name).toBe("admin/my-llama");
    // Sent while the deployment is not running yet: it waits in the queue.
    const pending = chat(`deploy_id:${deployId}`);
    const answer = await pending;
    expect(answer.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(answer.usage?.completion_tokens).toBe(5);
    // The reconciler records `running` on its next pass after the replica reports healthy.
    const after = await waitFor(
      "running",
      async () => {
        const d = await get();
        return d.status === "running" ? d : undefined;
      },
      { timeoutMs: 90_000 },
    );
    expect(after.instances).toEqual({ running: 1, pending: 0 });
  }, 120_000);

  test("reads and lists it in the provider's shape, with the token nowhere but sealed", async () => {
    const d = await get();
    expect(d).toMatchObject({
      deploy_id: deployId,
      model_name: "admin/my-llama",
      version: "1",
      task: "chat",
      status: "running",
      fail_reason: null,
      config: {
        gpu: "A100-80GB",
        num_gpus: 1,
        max_batch_size: 8,
        engine: "vllm",
        hf: { repo: "meta-llama/Meta-Llama-3-8B-Instruct", revision: "main", has_token: true },
        extra_args: ["--enable-prefix-caching"],
      },
      settings: { min_instances: 1, max_instances: 1 },
    });
    expect(Date.parse(d.created_at)).toBeLessThanOrEqual(Date.parse(d.updated_at));

    const list = await api<DeploymentOut[]>("GET", "/deploy/list");
    expect(list.status).toBe(200);
    expect(list.json.map((x) => x.deploy_id)).toEqual([deployId]);
    expect((await api<DeploymentOut[]>("GET", "/deploy/list?status=running,deploying")).json.map((x) => x.deploy_id)).toEqual([deployId]);
    expect((await api<DeploymentOut[]>("GET", "/deploy/list?status=stopped")).json).toEqual([]);
    const badStatus = await api<ErrorOut>("GET", "/deploy/list?status=sleeping");
    expect(badStatus.status).toBe(400);
    expect(badStatus.json.error.param).toBe("status");

    const versions = await api<{ model_name: string; version: string; uploaded_at: string }[]>("GET", "/models/admin/my-llama/versions");
    expect(versions.status).toBe(200);
    expect(versions.json).toEqual([{ model_name: "admin/my-llama", version: "1", uploaded_at: expect.any(String) }]);

    const gpus = await api<{ gpus: { gpu: string; total: number | null; in_use: number; available: number | null }[] }>("GET", "/deploy/llm/gpu_availability");
    expect(gpus.status).toBe(200);
    expect(gpus.json.gpus.map((g) => g.gpu)).toEqual(["A100-80GB", "H100-80GB", "L4"]);
    const a100 = gpus.json.gpus[0]!;
    // The catalog's chat model and this deployment, one A100 each.
    expect(a100.in_use).toBe(2);
    expect(a100.available).toBe(a100.total! - 2);

    // The token: not in any answer, not in the deployments row, not in the logs; sealed apart.
    expect(JSON.stringify([d, list.json])).not.toContain(HF_TOKEN);
    const row = await db.selectFrom("deployments").selectAll().where("id", "=", deployId).executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain(HF_TOKEN);
    const secret = await db.selectFrom("deployment_secrets").selectAll().where("deployment_id", "=", deployId).executeTakeFirstOrThrow();
    expect(secret.hf_token_sealed).toMatch(/^v1:/);
    expect(secret.hf_token_sealed).not.toContain(HF_TOKEN);
    expect(platform.output()).not.toContain(HF_TOKEN);
  });

  test("serves it by name and by name:version; an unknown version is a 404", async () => {
    expect((await chat("admin/my-llama")).choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect((await chat("admin/my-llama:1")).choices[0]?.message.content?.length).toBeGreaterThan(0);
    await expect(chat("admin/my-llama:2")).rejects.toMatchObject({ status: 404, error: { param: "model" } });
  });

  test("is invisible to another tenant's key: read, call, change, stop and delete are 404s", async () => {
    const before = await snapshot();
    expect((await api("GET", `/deploy/${deployId}`, undefined, otherKey)).status).toBe(404);
    expect((await api<unknown[]>("GET", "/deploy/list", undefined, otherKey)).json).toEqual([]);
    expect((await api("PUT", `/deploy/${deployId}`, { settings: { max_instances: 3 } }, otherKey)).status).toBe(404);
    expect((await api("POST", `/deploy/${deployId}/stop`, undefined, otherKey)).status).toBe(404);
    expect((await api("POST", `/deploy/${deployId}/start`, undefined, otherKey)).status).toBe(404);
    const del = await api<ErrorOut>("DELETE", `/deploy/${deployId}`, undefined, otherKey);
    expect(del.status).toBe(404);
    expect(del.json.error.param).toBe("deploy_id");
    expect((await api("GET", "/models/admin/my-llama/versions", undefined, otherKey)).status).toBe(404);
    await expect(chat(`deploy_id:${deployId}`, otherOpenai)).rejects.toMatchObject({ status: 404 });
    await expect(chat("admin/my-llama", otherOpenai)).rejects.toMatchObject({ status: 404 });
    expect(await snapshot()).toEqual(before);
    expect((await get()).status).toBe("running");
  });

  test("refuses bad input with a 400 naming the field, and changes nothing", async () => {
    const before = await snapshot();
    const good = { model_name: "bad-input", gpu: "A100-80GB" };
    const cases: [unknown, string][] = [
      [{ gpu: "A100-80GB" }, "model_name"],
      [{ ...good, gpu: "TPU-v9" }, "gpu"],
      [{ ...good, num_gpus: 9 }, "num_gpus"],
      [{ ...good, max_batch_size: 0 }, "max_batch_size"],
      [{ ...good, settings: { min_instances: 3, max_instances: 2 } }, "settings.min_instances"],
      [{ ...good, model_name: "someone-else/model" }, "model_name"],
      [{ ...good, hf: { repo: "org/model", token: 7 } }, "hf.token"],
      [{ ...good, colour: "blue" }, "colour"],
    ];
    for (const [body, param] of cases) {
      const r = await api<ErrorOut>("POST", "/deploy/llm", body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json.error.param, JSON.stringify(body)).toBe(param);
      expect(r.json.error.type).toBe("invalid_request_error");
      expect(r.json.error.message).toContain(param.split(".").at(-1)!);
    }
    for (const [body, param] of [
      [{ gpu: "H100-80GB" }, "gpu"],
      [{ settings: { max_instances: 2 }, num_gpus: 2 }, "num_gpus"],
      [{ max_batch_size: 4 }, "max_batch_size"],
      [{ settings: { min_instances: 2, max_instances: 1 } }, "settings.min_instances"],
      [{ settings: { max_instances: 0 } }, "settings.max_instances"],
      [{}, "settings"],
    ] as const) {
      const r = await api<ErrorOut>("PUT", `/deploy/${deployId}`, body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json.error.param, JSON.stringify(body)).toBe(param);
    }
    const startRunning = await api<ErrorOut>("POST", `/deploy/${deployId}/start`);
    expect(startRunning.status).toBe(409);
    expect(startRunning.json.error.message).toContain("running");
    expect(startRunning.json.error.param).toBe("status");
    expect((await api("GET", "/deploy/dep_doesnotexist")).status).toBe(404);
    expect(await snapshot()).toEqual(before);
  });

  test("changes its settings (and only those)", async () => {
    const r = await api<DeploymentOut>("PUT", `/deploy/${deployId}`, { settings: { max_instances: 2 } });
    expect(r.status).toBe(200);
    expect(r.json.settings).toEqual({ min_instances: 1, max_instances: 2 });
    expect(r.json.config.gpu).toBe("A100-80GB");
    expect((await get()).settings).toEqual({ min_instances: 1, max_instances: 2 });
  });

  test("stops (503 saying so, no process left) and starts again", async () => {
    const stopped = await api<DeploymentOut>("POST", `/deploy/${deployId}/stop`);
    expect(stopped.status).toBe(200);
    expect(stopped.json.status).toBe("stopped");
    for (const model of [`deploy_id:${deployId}`, "admin/my-llama"]) {
      const r = await rawChat(model);
      expect(r.status).toBe(503);
      expect(r.json.error.message).toContain("stopped");
      expect(Number(r.headers.get("retry-after"))).toBeGreaterThan(0);
    }
    await waitFor("the replica to go", async () => (await get()).instances.running === 0 && processesOf(deployId).length === 0, { timeoutMs: 90_000 });
    expect((await get()).instances).toEqual({ running: 0, pending: 0 });
    const again = await api<ErrorOut>("POST", `/deploy/${deployId}/stop`);
    expect(again.status).toBe(409);
    expect(again.json.error.message).toContain("stopped");

    const started = await api<DeploymentOut>("POST", `/deploy/${deployId}/start`);
    expect(started.status).toBe(200);
    expect(started.json.status).toBe("deploying");
    // A request while it deploys again waits for it.
    expect((await chat(`deploy_id:${deployId}`)).choices[0]?.message.content?.length).toBeGreaterThan(0);
    await waitFor("running", async () => (await get()).status === "running", { timeoutMs: 90_000 });
  }, 120_000);

  test("scales to zero when idle with min_instances 0 (still running), and a request wakes it", async () => {
    const r = await api<DeploymentOut>("PUT", `/deploy/${deployId}`, { settings: { min_instances: 0, max_instances: 1 } });
    expect(r.status).toBe(200);
    const zero = await waitFor(
      "scale to zero",
      async () => {
        const d = await get();
        return d.instances.running === 0 && d.instances.pending === 0 && processesOf(deployId).length === 0 ? d : undefined;
      },
      { timeoutMs: 90_000 },
    );
    expect(zero.status).toBe("running");
    const answer = await chat(`deploy_id:${deployId}`);
    expect(answer.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect((await get()).instances.running).toBe(1);
  }, 120_000);

  test("deletes it: requests get a 404, nothing runs, it cannot be started, and the history shows every step", async () => {
    const queues = queueKeys(platform.redisPrefix).queues(deployId);
    expect(await redis.exists(...queues)).toBeGreaterThan(0);
    const del = await api<DeploymentOut>("DELETE", `/deploy/${deployId}`);
    expect(del.status).toBe(200);
    expect(del.json.status).toBe("deleted");
    await expect(chat(`deploy_id:${deployId}`)).rejects.toMatchObject({ status: 404 });
    await expect(chat("admin/my-llama")).rejects.toMatchObject({ status: 404 });
    await waitFor("no process left", async () => processesOf(deployId).length === 0, { timeoutMs: 90_000 });
    expect(await db.selectFrom("deployment_secrets").selectAll().where("deployment_id", "=", deployId).executeTakeFirst()).toBeUndefined();
    // Its request queue (a Redis stream per priority class) is removed with it.
    await waitFor("its queue streams removed", async () => (await redis.exists(...queues)) === 0, { timeoutMs: 90_000 });
    expect((await api<unknown[]>("GET", "/deploy/list")).json).toEqual([]);
    expect((await api<DeploymentOut[]>("GET", "/deploy/list?status=deleted")).json.map((d) => d.deploy_id)).toEqual([deployId]);

    const before = await snapshot();
    for (const [method, path, body] of [
      ["POST", `/deploy/${deployId}/start`, undefined],
      ["POST", `/deploy/${deployId}/stop`, undefined],
      ["DELETE", `/deploy/${deployId}`, undefined],
      ["PUT", `/deploy/${deployId}`, { settings: { max_instances: 1 } }],
    ] as const) {
      const r = await api<ErrorOut>(method, path, body);
      expect(r.status, `${method} ${path}`).toBe(409);
      expect(r.json.error.message, `${method} ${path}`).toContain("deleted");
      expect(r.json.error.param).toBe("status");
    }
    expect(await snapshot()).toEqual(before);

    // A new deploy of the same model: a new id and the next version.
    const second = await api<{ deploy_id: string }>("POST", "/deploy/llm", { model_name: "my-llama", gpu: "L4" });
    expect(second.status).toBe(200);
    expect(second.json.deploy_id).not.toBe(deployId);
    expect((await get(second.json.deploy_id)).version).toBe("2");
    const versions = await api<{ version: string }[]>("GET", "/models/my-llama/versions");
    expect(versions.json.map((v) => v.version)).toEqual(["1", "2"]);
    expect((await api("DELETE", `/deploy/${second.json.deploy_id}`)).status).toBe(200);

    const events = (await listDeploymentEvents(db, deployId)).map(
      (e) => `${e.from_status ?? "-"}>${e.to_status}${e.from_status === e.to_status ? ` ${e.reason?.split(":")[0]}` : ""}`,
    );
    const head = [
      "->initializing",
      "initializing>downloading",
      "downloading>deploying",
      "deploying>running",
      "running>running settings",
      "running>stopped",
      "stopped>deploying",
      "deploying>running",
      "running>running settings",
      "running>running scaled to zero",
      "running>running woken from zero",
    ];
    expect(events.slice(0, head.length)).toEqual(head);
    // It may have gone idle again (and to zero) before the delete.
    for (const e of events.slice(head.length, -1)) expect(e).toBe("running>running scaled to zero");
    expect(events.at(-1)).toBe("running>deleted");
  }, 120_000);
});
