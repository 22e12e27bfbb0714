/**
 * The agent's gRPC server against engine-sim in its own process (real HTTP, real gRPC):
 * when the agent falls behind the engine, the chunks one socket read brings leave as one
 * `chunks` message, in order, and nothing is lost; a call without the release's agent token
 * (or with another) is refused UNAUTHENTICATED before it reaches the engine, and counted.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { createLogger } from "@infera/core";
import {
  AgentService,
  agentAuthInterceptor,
  CancelRequestSchema,
  clientConstructor,
  Endpoint,
  GenerateRequestSchema,
  HealthRequestSchema,
  type GenerateResponse,
} from "@infera/contracts";
import { freePort, stopChild, waitFor } from "@infera/testkit";
import { VllmAdapter } from "./engine/vllm.ts";
import { createAgentMetrics } from "./metrics.ts";
import { AgentServer } from "./server.ts";

const ENGINE_MAIN = fileURLToPath(new URL("../../engine-sim/src/main.ts", import.meta.url));

const TOKEN = "server-test-agent-token-0123456789abcdefghij";
const Client = clientConstructor(AgentService);

let engine: ChildProcess;
let server: AgentServer;
let metrics: ReturnType<typeof createAgentMetrics>;
let grpcPort: number;
let client: InstanceType<typeof Client>;

beforeAll(async () => {
  const port = await freePort();
  engine = spawn(process.execPath, ["--import", "tsx", ENGINE_MAIN], {
    env: { ...process.env, PORT: String(port), SIM_TTFT_MS: "0", SIM_ITL_MS: "4", SIM_JITTER: "0", LOG_LEVEL: "silent" },
    stdio: "ignore",
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor("engine-sim to answer /health", () => fetch(`${url}/health`).then((r) => r.ok), { timeoutMs: 60_000, intervalMs: 100 });
  metrics = createAgentMetrics();
  server = new AgentServer({
    adapter: new VllmAdapter(url),
    logger: createLogger({ service: "agent", level: "silent" }),
    metrics,
    replicaId: "r-test",
    authToken: TOKEN,
  });
  server.setEngineState(true); // what the heartbeat does once the engine answers /health
  grpcPort = await server.start("127.0.0.1", 0);
  // As the gateway dials an agent: the token on every call.
  client = new Client(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure(), { interceptors: [agentAuthInterceptor(TOKEN)] });
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

  describe("the agent token", () => {
    const chat = (requestId: string) =>
      create(GenerateRequestSchema, {
        requestId,
        endpoint: Endpoint.CHAT_COMPLETIONS,
        body: Buffer.from(JSON.stringify({ model: "meta-llama/Meta-Llama-3-8B-Instruct", messages: [{ role: "user", content: "hi" }], max_tokens: 4 })),
      });
    /** A Generate call's outcome: its messages, or the gRPC error it ended with. */
    const generate = (c: InstanceType<typeof Client>, requestId: string) =>
      new Promise<{ code: number; details: string; events: string[] }>((resolve) => {
        const events: string[] = [];
        const call = c.generate(chat(requestId));
        call.on("data", (m: GenerateResponse) => events.push(m.event.case ?? ""));
        call.on("error", (err: grpc.ServiceError) => resolve({ code: err.code, details: err.details, events }));
        call.on("end", () => resolve({ code: grpc.status.OK, details: "", events }));
      });
    const health = (c: InstanceType<typeof Client>) =>
      new Promise<number>((resolve) => c.health(create(HealthRequestSchema, {}), new grpc.Metadata(), {}, (err) => resolve(err?.code ?? grpc.status.OK)));
    const cancel = (c: InstanceType<typeof Client>) =>
      new Promise<number>((resolve) =>
        c.cancel(create(CancelRequestSchema, { requestId: "nope" }), new grpc.Metadata(), {}, (err) => resolve(err?.code ?? grpc.status.OK)),
      );
    /** agent_unauthenticated_calls_total as /metrics shows it, by "method/reason". */
    const counted = async () => {
      const text = await metrics.registry.getSingleMetricAsString("agent_unauthenticated_calls_total");
      const out: Record<string, number> = {};
      for (const line of text.split("\n").filter((l) => l.startsWith("agent_unauthenticated_calls_total{"))) {
        const method = /method="(\w+)"/.exec(line)?.[1];
        const reason = /reason="(\w+)"/.exec(line)?.[1];
        out[`${method}/${reason}`] = Number(line.split(" ").at(-1));
      }
      return out;
    };
    const ran = async () => (await metrics.requests.get()).values.reduce((n, v) => n + v.value, 0);

    it("without a token every method is refused UNAUTHENTICATED, nothing reaches the engine, and each refusal is counted", async () => {
      const bare = new Client(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure());
      const ranBefore = await ran();
      try {
        const r = await generate(bare, "no-token-1");
        expect(r).toEqual({ code: grpc.status.UNAUTHENTICATED, details: "no agent token: this agent serves the gateway only", events: [] });
        expect(await health(bare)).toBe(grpc.status.UNAUTHENTICATED);
        expect(await cancel(bare)).toBe(grpc.status.UNAUTHENTICATED);
      } finally {
        bare.close();
      }
      expect(await ran()).toBe(ranBefore);
      expect(await counted()).toMatchObject({ "generate/missing": 1, "health/missing": 1, "cancel/missing": 1 });
      // The id was never run: with the token the same request id goes through.
      const ok = await generate(client, "no-token-1");
      expect(ok.code).toBe(grpc.status.OK);
      expect(ok.events.at(-1)).toBe("usage");
    });

    it("with another token (longer, shorter, one character off) it is refused and counted as wrong; with the token it serves", async () => {
      for (const [i, token] of [`${TOKEN}x`, TOKEN.slice(0, -1), `${TOKEN.slice(0, -1)}k`, "Bearer"].entries()) {
        const other = new Client(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure(), { interceptors: [agentAuthInterceptor(token)] });
        try {
          expect((await generate(other, `wrong-${i}`)).code).toBe(grpc.status.UNAUTHENTICATED);
        } finally {
          other.close();
        }
      }
      expect((await counted())["generate/wrong"]).toBe(4);
      expect(await health(client)).toBe(grpc.status.OK);
      expect((await generate(client, "right-1")).code).toBe(grpc.status.OK);
    });
  });
});
