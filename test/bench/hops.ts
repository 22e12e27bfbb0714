/**
 * Where the added latency goes, one hop at a time, at concurrency 1: the same streaming
 * chat request (engine-sim answering at once, or after `--ttft-ms`) sent straight to
 * engine-sim, to its worker agent over gRPC (as the gateway calls it), and through the whole
 * platform. Prints time to first byte p50/p99 for each and the difference between neighbours.
 *
 *   pnpm bench:hops [--requests 400] [--ttft-ms 0]
 */
import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import { Endpoint, GenerateRequestSchema } from "@infera/contracts";
import { AgentClients } from "../../services/gateway/src/agents.ts";
import { call, pool, type Target } from "./load.ts";
import { describePlacements, placements, startBenchPlatform } from "./platform.ts";
import { summarize } from "./stats.ts";

const { values } = parseArgs({ options: { requests: { type: "string", default: "400" }, "ttft-ms": { type: "string", default: "0" } } });
const N = Number(values.requests);

const p = await startBenchPlatform({
  deployments: [{ catalog: "chat", replicas: 1, maxBatchSize: 64 }],
  env: { SIM_TTFT_MS: String(Number(values["ttft-ms"])), SIM_ITL_MS: "0" },
});
const agents = new AgentClients(p.agentAuthToken);
try {
  const r = p.replicas.find((x) => x.deploymentId)!;
  const body = (stream: boolean, usage: boolean) =>
    JSON.stringify({
      model: r.model,
      messages: [{ role: "user", content: "Say hi" }],
      max_tokens: 4,
      stream,
      ...(usage ? { stream_options: { include_usage: true } } : {}),
    });
  const engine: Target = { label: "direct", pool: pool(r.engineUrl, 1), path: "/v1/chat/completions", headers: { "content-type": "application/json" } };
  const gateway: Target = {
    label: "platform",
    pool: pool(p.baseURL, 1),
    path: "/v1/chat/completions",
    headers: { "content-type": "application/json", authorization: `Bearer ${p.apiKey}` },
  };

  const agent = agents.get(r.agentAddress);
  let seq = 0;
  const viaAgent = () =>
    new Promise<number>((resolve, reject) => {
      const t0 = performance.now();
      let first = 0;
      const c = agent.generate(
        create(GenerateRequestSchema, {
          requestId: `hop-${seq++}`,
          endpoint: Endpoint.CHAT_COMPLETIONS,
          body: Buffer.from(body(true, true)),
          stream: true,
          tenantId: "bench",
        }),
      );
      c.on("data", () => (first ||= performance.now() - t0));
      c.on("error", reject);
      c.on("end", () => resolve(first));
    });

  const measure = async (fn: () => Promise<number>) => {
    for (let i = 0; i < 50; i++) await fn(); // warm up (JIT, connections)
    const xs: number[] = [];
    for (let i = 0; i < N; i++) xs.push(await fn());
    return summarize(xs);
  };
  const direct = await measure(async () => (await call(engine, body(true, true), { stream: true })).firstMs);
  const grpcHop = await measure(viaAgent);
  const full = await measure(async () => {
    const res = await call(gateway, body(true, false), { stream: true });
    if (!res.ok) throw new Error(`platform answered ${res.status}: ${res.error}`);
    return res.firstMs;
  });
  // Which path the platform's requests took (FAST_PATH=false: all through the queue).
  const placed = await placements(p.baseURL);
  const f = (x: number) => x.toFixed(3).padStart(8);
  console.log(`\ntime to first byte at concurrency 1, ${N} requests (ms)      p50      p99`);
  console.log(`  engine-sim direct                                 ${f(direct.p50)} ${f(direct.p99)}`);
  console.log(`  worker agent over gRPC                            ${f(grpcHop.p50)} ${f(grpcHop.p99)}   (+${(grpcHop.p50 - direct.p50).toFixed(3)} p50)`);
  console.log(`  whole platform (gateway, queue, scheduler, agent) ${f(full.p50)} ${f(full.p99)}   (+${(full.p50 - grpcHop.p50).toFixed(3)} p50)`);
  console.log(`  platform placements: ${describePlacements(placed)}`);
} finally {
  agents.stop();
  await p.stop();
}
