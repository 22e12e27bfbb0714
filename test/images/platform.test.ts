/**
 * The platform as users receive it: its images, built from this checkout by the global
 * setup (deploy/images.sh on the base made here), run as containers by deploy/compose.yaml
 * (docker-compose on podman) with host networking only, against the machine's own Postgres
 * and Redis (a database and key prefix of this test's own). Driven with the official
 * `openai` client: chat whole and streamed, embeddings, a deployment made with the deploy
 * API and served by the scheduler container's local runtime, a replica run by hand as an
 * engine-sim container and a worker-agent container, and SIGTERM on the gateway container
 * while streams are open. It ends with nothing left: no container, process or image of its own.
 */
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { Redis } from "ioredis";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { redisKeys, type ReplicaReport } from "@infera/contracts";
import { createDb, LLAMA3_TOKENIZER, listDeployments } from "@infera/registry";
import { createTestDatabase, flushPrefix, freePort, metricSum, parseMetrics, TEST_REDIS_URL, testRedisPrefix, type TestDatabase } from "@infera/testkit";
import { IMAGE_NAMES, startEngine, TEST_REGISTRY, type Engine } from "./engine.ts";

const CHAT = "meta-llama/Meta-Llama-3-8B-Instruct";
const EMBED = "BAAI/bge-large-en-v1.5";
const BASE_IMAGE = "localhost/infera/node:20.20.2-bookworm";
const tag = inject("imageTag");
const ref = (name: string) => `${TEST_REGISTRY}/${name}:${tag}`;

let engine: Engine | undefined;
let testDb: TestDatabase | undefined;
let db: ReturnType<typeof createDb>;
let redis: Redis;
let prefix = "";
let vars: Record<string, string> = {};
let baseURL = "";
let adminKey = "";
let openai: OpenAI;
let chatDeploymentId = "";
let replicaEnginePort = 0;
let composedDown = false;

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${engine ? `\n${await logs()}` : ""}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function logs(): Promise<string> {
  const r = await engine!.compose(["logs", "--no-color", "--tail", "30"], vars);
  return r.stdout.slice(-6000);
}

async function compose(args: string[], extra: Record<string, string> = {}, timeoutMs = 180_000): Promise<string> {
  const r = await engine!.compose(args, { ...vars, ...extra }, timeoutMs);
  if (r.code !== 0) throw new Error(`docker-compose ${args.join(" ")} exited ${r.code}:\n${r.stderr.slice(-3000)}\n${await logs()}`);
  return r.stdout + r.stderr;
}

async function podman(args: string[]): Promise<string> {
  const r = await engine!.podman(args);
  if (r.code !== 0) throw new Error(`podman ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

const container = (service: string) => `${engine!.project}_${service}_1`;

async function inspect<T>(what: "image" | "container", name: string, format: string): Promise<T> {
  return JSON.parse(await podman([what, "inspect", "--format", `{{json ${format}}}`, name])) as T;
}

/** pids whose environment carries this test's Redis prefix: everything the containers started. */
function processesOfThisTest(): { pid: number; cmd: string }[] {
  const found: { pid: number; cmd: string }[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const env = readFileSync(`/proc/${entry}/environ`, "utf8").split("\0");
      if (env.includes(`REDIS_PREFIX=${prefix}`) || (env.includes(`SIM_MODEL=${CHAT}`) && env.includes(`PORT=${replicaEnginePort}`))) {
        found.push({ pid: Number(entry), cmd: readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " ").trim() });
      }
    } catch {
      // gone, or not readable
    }
  }
  return found;
}

function processesOfDeployment(id: string): string[] {
  const cmds: string[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, "utf8").split("\0").includes(`INFERA_DEPLOYMENT_ID=${id}`)) {
        cmds.push(readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " ").trim());
      }
    } catch {
      // gone
    }
  }
  return cmds;
}

async function healthyReplicas(deploymentId: string): Promise<ReplicaReport[]> {
  const all = await redis.hgetall(redisKeys(prefix).replicas(deploymentId));
  const now = Date.now();
  return Object.values(all)
    .map((v) => JSON.parse(v) as ReplicaReport)
    .filter((r) => r.healthy && !r.draining && now - r.at < 3000);
}

async function api<T>(method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
  const headers: Record<string, string> = { authorization: `Bearer ${adminKey}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(`${baseURL}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, json: (text ? JSON.parse(text) : undefined) as T };
}

beforeAll(async () => {
  testDb = await createTestDatabase("images");
  db = createDb(testDb.url, { max: 2 });
  prefix = testRedisPrefix("images");
  redis = new Redis(TEST_REDIS_URL);
  engine = await startEngine(`infera-images-${randomBytes(4).toString("hex")}`);
  const [gatewayPort, batchGatewayPort, schedulerPort, enginePort, agentPort, agentMetricsPort] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  replicaEnginePort = enginePort!;
  adminKey = `sk-admin-${randomBytes(16).toString("hex")}`;
  baseURL = `http://127.0.0.1:${gatewayPort}`;
  vars = {
    INFERA_REGISTRY: TEST_REGISTRY,
    INFERA_TAG: tag,
    DATABASE_URL: testDb.url,
    REDIS_URL: TEST_REDIS_URL,
    REDIS_PREFIX: prefix,
    INFERA_HOST: "127.0.0.1",
    INFERA_PORT: String(gatewayPort),
    INFERA_BATCH_PORT: String(batchGatewayPort),
    INFERA_SCHEDULER_METRICS_PORT: String(schedulerPort),
    SEED_CATALOG: "chat,embeddings",
    BOOTSTRAP_ADMIN_KEY: adminKey,
    SIM_TTFT_MS: "30",
    SIM_ITL_MS: "20",
    SHUTDOWN_GRACE_MS: "20000",
    INFERA_REPLICA_ENGINE_PORT: String(enginePort),
    INFERA_REPLICA_AGENT_PORT: String(agentPort),
    INFERA_REPLICA_AGENT_METRICS_PORT: String(agentMetricsPort),
    INFERA_REPLICA_ID: `${engine.project}-replica`,
    INFERA_REPLICA_DEPLOYMENT_ID: "",
  };
  await compose(["up", "-d"]);
  await until("the gateway's /readyz", async () => (await fetch(`${baseURL}/readyz`)).status === 200);
  await until("the catalog to run", async () => {
    const ds = await listDeployments(db, { tenantId: null });
    return ds.length === 2 && ds.every((d) => d.status === "running") && ds;
  });
  chatDeploymentId = (await listDeployments(db, { tenantId: null })).find((d) => d.model_name === CHAT)!.id;
  openai = new OpenAI({ apiKey: adminKey, baseURL: `${baseURL}/v1/openai`, maxRetries: 0, timeout: 60_000 });
}, 300_000);

afterAll(async () => {
  // Whatever a failed test left: the last test checks this on the success path.
  if (engine && !composedDown) await engine.compose(["--profile", "replica", "down", "--timeout", "20"], vars, 120_000).catch(() => undefined);
  await engine?.stop();
  redis?.disconnect();
  await db?.destroy();
  await testDb?.drop();
  if (prefix) await flushPrefix(prefix);
}, 180_000);

describe("the images", () => {
  it("are small and safe: Node.js and a bundle on the base, a non-root user, tini, no npm, compiler or node_modules", async () => {
    const base = await inspect<number>("image", BASE_IMAGE, ".Size");
    const rows: string[] = [];
    for (const name of IMAGE_NAMES) {
      const size = await inspect<number>("image", ref(name), ".Size");
      const config = await inspect<{ User: string; Entrypoint: string[] }>("image", ref(name), ".Config");
      expect(config.User, name).toBe("10001:10001");
      expect(config.Entrypoint.slice(0, 3), name).toEqual(["tini", "--", "node"]);
      // What the image adds to Node.js on Debian: the bundle (the scheduler's holds three).
      expect(size - base, `${name} adds ${size - base} bytes`).toBeLessThan(25e6);
      const found = await podman([
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        ref(name),
        "-c",
        "for c in npm npx corepack yarn gcc cc c++ make tsc tsx esbuild; do command -v $c; done; find / -xdev -name node_modules -type d; touch /app/x 2>/dev/null && echo /app is writable; true",
      ]);
      expect(found.trim(), name).toBe("");
      rows.push(`${name} ${(size / 1e6).toFixed(1)} MB (+${((size - base) / 1e6).toFixed(1)} MB)`);
    }
    console.log(`[images] built in ${inject("buildSeconds").toFixed(0)} s; base ${(base / 1e6).toFixed(1)} MB; ${rows.join("; ")}`);
  });

  it("the gateway image builds a model's tokenizer in its worker thread (tokenizer-worker.mjs beside main.mjs)", async () => {
    // What the gateway's prompt-tokens.ts starts where it runs compiled: the worker hands back the BPE tables, and exits.
    const tokenizer = createRequire(new URL("../../deploy/local/package.json", import.meta.url)).resolve(LLAMA3_TOKENIZER);
    const script = [
      'const { Worker } = require("node:worker_threads");',
      'const w = new Worker(new URL("file:///app/tokenizer-worker.mjs"), { execArgv: [], workerData: { ref: "/tokenizer/tokenizer.json" } });',
      'w.once("message", (m) => { console.log(JSON.stringify({ error: m.error, table: m.table && Object.keys(m.table), vocab: m.table && m.table.ids.length })); w.terminate(); });',
    ].join("\n");
    const out = await podman([
      "run",
      "--rm",
      "--network=host",
      "-v",
      `${tokenizer}:/tokenizer/tokenizer.json:ro`,
      "--entrypoint",
      "node",
      ref("gateway"),

      "-e",
      script,
    ]);
    const built = JSON.parse(out.trim()) as { error?: string; table?: string[]; vocab?: number };
    expect(built.error).toBeUndefined();
    expect(built.table).toEqual(expect.arrayContaining(["ids", "rank"]));
    expect(built.vocab).toBeGreaterThan(100_000);
  });

  it("run with host networking, a read-only root filesystem and tini as PID 1", async () => {
    for (const service of ["gateway", "scheduler"]) {
      const host = await inspect<{ NetworkMode: string; ReadonlyRootfs: boolean }>("container", container(service), ".HostConfig");
      expect(host.NetworkMode, service).toBe("host");
      expect(host.ReadonlyRootfs, service).toBe(true);
      const ps = await podman(["exec", container(service), "sh", "-c", "id -u; tr '\\0' ' ' </proc/1/cmdline; echo; touch /x 2>&1 || true"]);
      const [uid, pid1, touch] = ps.trim().split("\n");
      expect(uid, service).toBe("10001");
      expect(pid1?.trim(), service).toBe("tini -- node /app/main.mjs");
      expect(touch, service).toMatch(/Read-only file system/);
    }
  });
});

describe("the platform from its images, with the official openai client", () => {
  it("serves the web console from the gateway image, under its own-origin-only policy", async () => {
    const page = await fetch(`${baseURL}/console/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("default-src 'none'");
    const html = await page.text();
    const script = /<script[^>]+src="(\/console\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script, html).toBeTruthy();
    expect((await fetch(`${baseURL}${script}`)).status).toBe(200);
  });

  it("serves the API reference at /docs from the gateway image, its scripts and styles included", async () => {
    const page = await fetch(`${baseURL}/docs/`);
    expect(page.status).toBe(200);
    const html = await page.text();
    const assets = [...html.matchAll(/(?:src|href)="\.\/(static\/[^"]+)"/g)].map((m) => m[1]);
    expect(assets, html).toEqual(expect.arrayContaining([expect.stringMatching(/swagger-ui-bundle\.js$/), expect.stringMatching(/swagger-ui\.css$/)]));
    for (const a of assets) expect((await fetch(`${baseURL}/docs/${a}`)).status, a).toBe(200);
  });

  it("answers a chat completion", async () => {
    const c = await openai.chat.completions.create({ model: CHAT, messages: [{ role: "user", content: "Hello from a container" }], max_tokens: 8 });
    expect(c.object).toBe("chat.completion");
    expect(c.choices[0]!.message.content).toBeTruthy();
    expect(c.choices[0]!.finish_reason).toBe("length");
    expect(c.usage?.completion_tokens).toBe(8);
  });

  it("streams a chat completion, usage on the finish_reason chunk", async () => {
    const stream = await openai.chat.completions.create({ model: CHAT, messages: [{ role: "user", content: "Stream to me" }], max_tokens: 12, stream: true });
    let text = "";
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      if (chunk.choices[0]?.finish_reason) {
        finish = chunk.choices[0].finish_reason;
        usage = chunk.usage ?? undefined;
      }
    }
    expect(text.length).toBeGreaterThan(0);
    expect(finish).toBe("length");
    expect(usage?.completion_tokens).toBe(12);
  });

  it("embeds", async () => {
    const e = await openai.embeddings.create({ model: EMBED, input: ["The food was delicious", "and the waiter..."] });
    expect(e.data).toHaveLength(2);
    expect(e.data[0]!.embedding.length).toBeGreaterThan(0);
    expect(e.data[1]!.embedding.length).toBe(e.data[0]!.embedding.length);
    expect(e.usage.prompt_tokens).toBeGreaterThan(0);
  });

  it("serves from a replica run by hand: an engine-sim container and a worker-agent container beside it", async () => {
    await compose(["--profile", "replica", "up", "-d", "engine", "agent"], { INFERA_REPLICA_DEPLOYMENT_ID: chatDeploymentId });
    vars.INFERA_REPLICA_DEPLOYMENT_ID = chatDeploymentId;
    const replicas = await until("the hand-run replica beside the local one", async () => {
      const r = await healthyReplicas(chatDeploymentId);
      return r.length === 2 && r;
    });
    expect(replicas.map((r) => r.replicaId)).toContain(vars.INFERA_REPLICA_ID);
    // Concurrent streams spread over both replicas (least-loaded among equals), once the
    // scheduler has read the new replica's report.
    const burst = () =>
      Promise.all(
        Array.from({ length: 12 }, async (_, i) => {
          const s = await openai.chat.completions.create({
            model: CHAT,
            messages: [{ role: "user", content: `Request ${i} of a burst` }],
            max_tokens: 20,
            stream: true,
          });
          let finish = "";
          for await (const chunk of s) finish = chunk.choices[0]?.finish_reason ?? finish;
          return finish;
        }),
      );
    const servedByContainer = async () =>
      metricSum(parseMetrics(await (await fetch(`http://127.0.0.1:${replicaEnginePort}/metrics`)).text()), "vllm:request_success_total");
    let sent = 0;
    let served = 0;
    for (let round = 0; round < 10 && served === 0; round++) {
      const finishes = await burst();
      sent += finishes.length;
      expect(
        finishes.every((f) => f === "length" || f === "stop"),
        finishes.join(),
      ).toBe(true);
      served = await servedByContainer();
    }
    console.log(`[images] the engine-sim container served ${served} of ${sent} streams; the scheduler's own replica the rest`);
    expect(served).toBeGreaterThan(0);
    expect(served).toBeLessThan(sent);
  });

  it("runs a deployment made with the deploy API on the scheduler container's local runtime", async () => {
    const created = await api<{ deploy_id: string }>("POST", "/deploy/llm", {
      model_name: "images-llama",
      gpu: "A100-80GB",
      max_batch_size: 8,
      hf: { repo: "meta-llama/Meta-Llama-3-8B-Instruct" },
    });
    expect(created.status).toBe(200);
    const id = created.json.deploy_id;
    const running = await until("the deployment to run", async () => {
      const d = await api<{ status: string; model_name: string; instances: { running: number } }>("GET", `/deploy/${id}`);
      return d.json.status === "running" && d.json.instances.running === 1 && d.json;
    });
    // Its engine and agent are the scheduler image's bundles, children of the scheduler container.
    const cmds = processesOfDeployment(id);
    expect(cmds.sort()).toEqual(["/usr/local/bin/node /app/engine-sim/main.mjs", "/usr/local/bin/node /app/worker-agent/main.mjs"]);
    for (const model of [running.model_name, `deploy_id:${id}`]) {
      const c = await openai.chat.completions.create({ model, messages: [{ role: "user", content: "Hello, new deployment" }], max_tokens: 4 });
      expect(c.choices[0]!.message.content, model).toBeTruthy();
    }
    expect((await api("DELETE", `/deploy/${id}`)).status).toBe(200);
    await until("the deployment's processes to exit", async () => processesOfDeployment(id).length === 0, 30_000);
  });

  it("drains open streams when the gateway container gets SIGTERM, accepts nothing new and flushes usage", async () => {
    const opened = await Promise.all(
      Array.from({ length: 3 }, async (_, i) => {
        const { data, response } = await openai.chat.completions
          .create({ model: CHAT, messages: [{ role: "user", content: `A long answer, please (${i})` }], max_tokens: 100, stream: true })
          .withResponse();
        const chunks = data[Symbol.asyncIterator]();
        await chunks.next(); // the first chunk: it is being served
        return { chunks, requestId: response.headers.get("x-request-id")! };
      }),
    );
    const finished = opened.map(async ({ chunks, requestId }) => {
      let finish = "";
      let completion = 0;
      for (let r = await chunks.next(); !r.done; r = await chunks.next()) {
        finish = r.value.choices[0]?.finish_reason ?? finish;
        completion = r.value.usage?.completion_tokens ?? completion;
      }
      return { requestId, finish, completion };
    });
    // `stop` is SIGTERM to the container's PID 1 (tini, which hands it to node), then SIGKILL after 40 s.
    const signalledAt = Date.now();
    const stopping = compose(["stop", "--timeout", "40", "gateway"]);
    const refusal = await until(
      "the draining gateway to refuse a new request",
      async () => {
        try {
          const r = await fetch(`${baseURL}/v1/openai/models`, { headers: { authorization: `Bearer ${adminKey}` } });
          return r.status === 503 ? "503 to retry" : false;
        } catch {
          return "connection refused";
        }
      },
      15_000,
    );
    const results = await Promise.all(finished);
    await stopping;
    const state = await inspect<{ Status: string; ExitCode: number }>("container", container("gateway"), ".State");
    console.log(
      `[images] gateway SIGTERM: new request ${refusal}; ${results.length} open streams finished; exited ${state.ExitCode} after ${Date.now() - signalledAt} ms`,
    );
    // Each stream ended whole: a finish_reason and its usage (never an error event, never cut).
    for (const r of results) {
      expect(["stop", "length"], JSON.stringify(r)).toContain(r.finish);
      expect(r.completion, JSON.stringify(r)).toBeGreaterThan(0);
    }
    // It drained and exited by itself (SIGKILL would be 137); if not, its log says what it was stopping.
    const tail = state.ExitCode === 0 ? "" : await engine!.podman(["logs", "--tail", "40", container("gateway")]).then((r) => r.stdout + r.stderr);
    expect(state, tail).toMatchObject({ Status: "exited", ExitCode: 0 });
    // Usage was flushed before it exited: one record per stream, the tokens the client saw.
    const usage = await db
      .selectFrom("usage_records")
      .select(["request_id", "completion_tokens"])
      .where(
        "request_id",
        "in",
        results.map((r) => r.requestId),
      )
      .execute();
    const recorded = Object.fromEntries(usage.map((u) => [u.request_id, u.completion_tokens]));
    expect(recorded).toEqual(Object.fromEntries(results.map((r) => [r.requestId, r.completion])));
  });
});

describe("compose down", () => {
  it("leaves no container and no process behind", async () => {
    await compose(["--profile", "replica", "down", "--timeout", "20"]);
    composedDown = true;
    const left = await podman(["ps", "--all", "--filter", `label=com.docker.compose.project=${engine!.project}`, "--format", "{{.Names}}"]);
    expect(left.trim()).toBe("");
    await until("every process of the containers to be gone", async () => processesOfThisTest().length === 0, 20_000).catch(() => undefined);
    expect(processesOfThisTest()).toEqual([]);
  });
});
