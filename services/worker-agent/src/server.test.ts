/**
 * The agent's gRPC server against engine-sim in its own process (real HTTP, real gRPC):
 * when the agent falls behind the engine, the chunks one socket read brings leave as one
 * `chunks` message, in order, and nothing is lost.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { createLogger } from "@infera/core";
import { AgentService, clientConstructor, Endpoint, GenerateRequestSchema, type GenerateResponse } from "@infera/contracts";
import { freePort, stopChild, waitFor } from "@infera/testkit";
import { VllmAdapter } from "./engine/vllm.ts";
import { createAgentMetrics } from "./metrics.ts";
import { AgentServer } from "./server.ts";

const ENGINE_MAIN = fileURLToPath(new URL("../../engine-sim/src/main.ts", import.meta.url));

let engine: ChildProcess;
let server: AgentServer;
let client: InstanceType<ReturnType<typeof clientConstructor<typeof AgentService.method>>>;

beforeAll(async () => {
  const port = await freePort();
  engine = spawn(process.execPath, ["--import", "tsx", ENGINE_MAIN], {
    env: { ...process.env, PORT: String(port), SIM_TTFT_MS: "0", SIM_ITL_MS: "4", SIM_JITTER: "0", LOG_LEVEL: "silent" },
    stdio: "ignore",
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor("engine-sim to answer /health", () => fetch(`${url}/health`).then((r) => r.ok), { timeoutMs: 60_000, intervalMs: 100 });
  server = new AgentServer({
    adapter: new VllmAdapter(url),
    logger: createLogger({ service: "agent", level: "silent" }),
    metrics: createAgentMetrics(),
    replicaId: "r-test",
  });
  server.setEngineState(true); // what the heartbeat does once the engine answers /health
  const grpcPort = await server.start("127.0.0.1", 0);
  client = new (clientConstructor(AgentService))(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
}, 90_000);

afterAll(async () => {
  client?.close();
  await server?.stop(1000);
  if (engine) await stopChild(engine);
});

describe("agent server", () => {
  it("sends the chunks of one engine read as one message when it is behind; every chunk arrives, in order", async () => {
    const body = {
      model: "meta-llama/Meta-Llama-3-8B-Instruct",
      messages: [{ role: "user", content: "Tell me a long story." }],
      max_tokens: 120,
      stream: true,
      stream_options: { include_usage: true },
    };
    const messages: GenerateResponse[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = client.generate(
        create(GenerateRequestSchema, { requestId: "coalesce-1", endpoint: Endpoint.CHAT_COMPLETIONS, body: Buffer.from(JSON.stringify(body)), stream: true }),
      );
      call.on("data", (m: GenerateResponse) => {
        messages.push(m);
        if (messages.length === 1) {
          // The agent (this process) stalls while the engine keeps writing a token every 4 ms.
          const stallUntil = Date.now() + 300;
          while (Date.now() < stallUntil);
        }
      });
      call.on("error", reject);
      call.on("end", resolve);
    });
    const chunks: string[] = [];
    let batched = 0;
    for (const m of messages) {
      if (m.event.case === "chunk") chunks.push(Buffer.from(m.event.value).toString());
      if (m.event.case === "chunks") {
        batched = Math.max(batched, m.event.value.items.length);
        for (const item of m.event.value.items) chunks.push(Buffer.from(item).toString());
      }
    }
    const last = messages.at(-1)!;
    expect(last.event.case).toBe("usage");
    const usage = last.event.case === "usage" ? last.event.value : undefined;
    expect(batched).toBeGreaterThan(1);
    expect(messages.length).toBeLessThan(chunks.length);
    // Every token the engine counted arrived, once, in order (one content delta per token).
    const deltas = chunks.map((c) => JSON.parse(c) as { choices: { index: number; delta: { content?: string }; finish_reason: string | null }[] });
    const content = deltas.filter((d) => d.choices[0]?.delta.content !== undefined);
    expect(content.length).toBe(usage?.completionTokens);
    expect(["stop", "length"]).toContain(deltas.at(-1)?.choices[0]?.finish_reason);
    expect(deltas.filter((d) => d.choices[0]?.finish_reason).length).toBe(1);
  }, 60_000);
});
