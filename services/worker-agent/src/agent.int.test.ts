/**
 * The agent as its engine pod runs it (real engine-sim, real Redis): the engine listens on
 * 127.0.0.1 only, so the kubelet's probes and a metrics scraper ask the agent's metrics port,
 * which relays the engine's /health and /metrics; an agent without its token does not start.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@infera/core";
import { flushPrefix, freePort, stopChild, TEST_REDIS_URL, testRedisPrefix, waitFor } from "@infera/testkit";
import { startAgent, type RunningAgent } from "./agent.ts";
import { loadConfig } from "./config.ts";

const ENGINE_MAIN = fileURLToPath(new URL("../../engine-sim/src/main.ts", import.meta.url));
const prefix = testRedisPrefix("agent-routes");
const env = (enginePort: number): Record<string, string> => ({
  AGENT_PORT: "0",
  METRICS_PORT: "0",
  ENGINE_URL: `http://127.0.0.1:${enginePort}`,
  DEPLOYMENT_ID: "dep-routes",
  REPLICA_ID: "r-routes",
  SERVED_MODEL_NAME: "meta-llama/Meta-Llama-3-8B-Instruct",
  REDIS_URL: TEST_REDIS_URL,
  REDIS_PREFIX: prefix,
  AGENT_AUTH_TOKEN: "agent-routes-test-token-0123456789abcdef",
});

let engine: ChildProcess | undefined;
let agent: RunningAgent;
let base = "";

beforeAll(async () => {
  const port = await freePort();
  engine = spawn(process.execPath, ["--import", "tsx", ENGINE_MAIN], {
    env: { ...process.env, HOST: "127.0.0.1", PORT: String(port), SIM_TTFT_MS: "0", SIM_ITL_MS: "0", LOG_LEVEL: "silent" },
    stdio: "ignore",
  });
  await waitFor("engine-sim to answer /health", () => fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok), { timeoutMs: 60_000, intervalMs: 100 });
  agent = await startAgent(loadConfig(env(port)), createLogger({ service: "agent", level: "silent" }));
  base = `http://127.0.0.1:${agent.metricsPort}`;
}, 90_000);

afterAll(async () => {
  await agent?.stop();
  if (engine) await stopChild(engine);
  await flushPrefix(prefix);
});

describe("the agent's metrics port speaks for its engine", () => {
  it("/engine/health is the engine's /health; /engine/metrics its vLLM metrics", async () => {
    const health = await fetch(`${base}/engine/health`);
    expect(health.status).toBe(200);
    const metrics = await fetch(`${base}/engine/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/^vllm:num_requests_running/m);
    // The agent's own series stay on /metrics.
    expect(await (await fetch(`${base}/metrics`)).text()).toContain("agent_unauthenticated_calls_total");
  });

  it("with the engine gone, /engine/health is 503 (the kubelet restarts the engine container)", async () => {
    await stopChild(engine!);
    engine = undefined;
    const r = await fetch(`${base}/engine/health`);
    expect(r.status).toBe(503);
  });

  it("an agent without AGENT_AUTH_TOKEN, or with a short one, does not start, naming the variable", () => {
    const { AGENT_AUTH_TOKEN: _, ...without } = env(1);
    expect(() => loadConfig(without)).toThrow("AGENT_AUTH_TOKEN is required");
    expect(() => loadConfig({ ...without, AGENT_AUTH_TOKEN: "short" })).toThrow("AGENT_AUTH_TOKEN must be at least 32 characters");
  });
});
