/**
 * What coalescing embedding requests buys: the same concurrent load sent to an engine-sim
 * (vLLM or TEI API, a fixed cost per engine call plus prefill per token) one request per
 * engine call, then through the coalescer. Prints engine calls and throughput for each.
 *
 *   pnpm tsx services/worker-agent/src/engine/coalescer-bench.ts [--mode vllm|tei] [--requests 512] [--concurrency 64] [--ttft 10]
 */
import { parseArgs } from "node:util";
import { createEngineSim } from "@infera/engine-sim";
import type { EngineAdapter, EngineSink } from "./adapter.ts";
import { EmbeddingCoalescer } from "./coalescer.ts";
import { TeiAdapter } from "./tei.ts";
import { VllmAdapter } from "./vllm.ts";

const { values } = parseArgs({
  options: {
    mode: { type: "string", default: "vllm" },
    requests: { type: "string", default: "512" },
    concurrency: { type: "string", default: "64" },
    ttft: { type: "string", default: "10" },
  },
});
const mode = values.mode === "tei" ? "tei" : "vllm";
const requests = Number(values.requests);
const concurrency = Number(values.concurrency);

const sim = createEngineSim({
  mode,
  task: "embeddings",
  ttftMs: Number(values.ttft),
  prefillUsPerToken: 40,
  jitter: 0,
  logLevel: "silent",
  maxClientBatchSize: 1024,
});
await sim.start(0, "127.0.0.1");
const enc = new TextEncoder();
const noop: EngineSink = { chunk: () => {}, body: () => {}, usage: () => {}, error: (e) => console.error(e.message) };

async function calls(): Promise<number> {
  return ((await (await fetch(`${sim.url}/sim/stats`)).json()) as { embeddings: { calls: number } }).embeddings.calls;
}

async function load(send: (body: Uint8Array) => Promise<void>): Promise<{ calls: number; seconds: number }> {
  const before = await calls();
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < requests) {
        const i = next++;
        await send(enc.encode(JSON.stringify({ model: "BAAI/bge-large-en-v1.5", input: `a short sentence to embed, number ${i}` })));
      }
    }),
  );
  return { calls: (await calls()) - before, seconds: (performance.now() - started) / 1000 };
}

const adapter: EngineAdapter = mode === "vllm" ? new VllmAdapter(sim.url) : new TeiAdapter(sim.url, 1024);
const coalescer = new EmbeddingCoalescer({ adapter, maxBatch: 64, maxInflight: 4 });
const direct = await load((body) => adapter.run({ endpoint: "embedding", body, stream: false, signal: new AbortController().signal }, noop));
const joined = await load((body) => coalescer.run(body, new AbortController().signal, noop));
for (const [name, r] of [
  ["one call per request", direct],
  ["coalesced", joined],
] as const) {
  console.log(
    `${mode} ${name.padEnd(22)} requests=${requests} concurrency=${concurrency} engine_calls=${r.calls} wall=${r.seconds.toFixed(2)}s throughput=${(requests / r.seconds).toFixed(0)} req/s`,
  );
}
await adapter.close();
await sim.stop();
