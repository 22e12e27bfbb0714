/**
 * `pnpm bench:relay`: CPU per relayed token of the relay path alone, in one process, with
 * no engine, scheduler or Redis beside it: an in-memory engine (vLLM-shaped SSE with
 * continuous usage, one event per read, paced by a timer, a Node Readable as an HTTP body is) → the agent's real gRPC server and
 * vLLM relay → gRPC → the gateway's real `callAgent` and SSE writer → HTTP → a client that
 * counts bytes. Process CPU (user + system) over a window, divided by the tokens the clients
 * received. Everything else in the process is the same from one build to the next, so two
 * builds compared on it differ by what their relay costs; on a loaded machine this varies
 * far less than the whole-platform figure (`pnpm bench --only=streams`).
 *
 * Flags: --streams=N (200) --itl=MS (50) --tokens=N (200 per stream) --window=S (6).
 */
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { parseArgs } from "node:util";
import { Pool } from "undici";
import { createLogger } from "@infera/core";
import type { ResolvedModel } from "@infera/registry";
import type { EngineAdapter } from "../../services/worker-agent/src/engine/adapter.ts";
import { relayOpenAIStream } from "../../services/worker-agent/src/engine/vllm.ts";
import { createAgentMetrics } from "../../services/worker-agent/src/metrics.ts";
import { AgentServer } from "../../services/worker-agent/src/server.ts";
import { callAgent } from "../../services/gateway/src/agent-call.ts";
import { AgentClients } from "../../services/gateway/src/agents.ts";
import { createGatewayMetrics } from "../../services/gateway/src/metrics.ts";

const { values: flags } = parseArgs({
  options: { streams: { type: "string" }, itl: { type: "string" }, tokens: { type: "string" }, window: { type: "string" } },
});
const STREAMS = Number(flags.streams ?? 200);
const ITL_MS = Number(flags.itl ?? 50);
const TOKENS = Number(flags.tokens ?? 200);
const WINDOW_S = Number(flags.window ?? 6);
const MODEL_NAME = "meta-llama/Meta-Llama-3-8B-Instruct";
const TOKEN = "relay-bench-agent-token-0123456789abcdefghij";

/**
 * One engine-sim-shaped stream: a chunk per token carrying the running usage, the usage-only chunk, [DONE].
 * A Node Readable pushed from a timer, one push per token, as the agent reads an engine's HTTP response.
 */
function engineStream(n: number, id: number): Readable {
  const head = `{"id":"chatcmpl-${id.toString(16).padStart(24, "0")}","object":"chat.completion.chunk","created":1700000000,"model":"${MODEL_NAME}","choices":[{"index":0,`;
  const out = new Readable({ read() {} });
  let i = 0;
  const tick = (): void => {
    if (out.destroyed) return;
    const last = i === n - 1;
    const delta = i === 0 ? `{"role":"assistant","content":" lamb"}` : `{"content":" word${i % 10}"}`;
    out.push(
      Buffer.from(
        `data: ${head}"delta":${delta},"logprobs":null,"finish_reason":${last ? '"length"' : "null"}}],"usage":{"prompt_tokens":12,"total_tokens":${13 + i},"completion_tokens":${i + 1}}}\n\n`,
      ),
    );
    if (++i < n) {
      setTimeout(tick, ITL_MS);
      return;
    }
    out.push(
      Buffer.from(
        `data: {"id":"chatcmpl-x","object":"chat.completion.chunk","created":1700000000,"model":"${MODEL_NAME}","choices":[],"usage":{"prompt_tokens":12,"total_tokens":${12 + n},"completion_tokens":${n}}}\n\ndata: [DONE]\n\n`,
      ),
    );
    out.push(null);
  };
  setTimeout(tick, ITL_MS);
  return out;
}

let streamIds = 0;
const adapter: EngineAdapter = {
  kind: "vllm",
  run: (_call, sink) => relayOpenAIStream(engineStream(TOKENS, streamIds++), sink),
  health: async () => true,
  load: async () => undefined,
  close: async () => {},
};

const logger = createLogger({ service: "relay-bench", level: "silent" });
const agent = new AgentServer({ adapter, logger, metrics: createAgentMetrics(), replicaId: "r-bench", authToken: TOKEN });
agent.setEngineState(true);
const agentPort = await agent.start("127.0.0.1", 0);
const agents = new AgentClients(TOKEN);
const metrics = createGatewayMetrics();
const model = { deploymentId: "d-bench", modelName: MODEL_NAME, engine: "vllm", priceInputPerM: 0, priceOutputPerM: 0, pricePerImage: 0 } as ResolvedModel;

let requestNo = 0;
const server = createServer((req, res) => {
  req.resume();
  const gone = new AbortController();
  res.on("close", () => {
    if (!res.writableFinished) gone.abort();
  });
  const requestId = `req-${requestNo++}`;
  void callAgent({
    agents,
    metrics,
    log: logger,
    assigned: { type: "assigned", requestId, replicaId: "r-bench", address: `127.0.0.1:${agentPort}`, queuedMs: 0, schedulerId: "s", deploymentId: "d-bench" },
    request: { requestId, tenantId: "t", model, endpoint: "chat", stream: true, includeUsage: false, startedAt: performance.now() },
    body: Buffer.from(JSON.stringify({ model: MODEL_NAME, messages: [{ role: "user", content: "hi" }], stream: true })),
    res,
    headers: { "x-request-id": requestId },
    signal: gone.signal,
    idleMs: 60_000,
  });
});
server.listen(0, "127.0.0.1");
await once(server, "listening");
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
const pool = new Pool(url, { connections: STREAMS + 10, pipelining: 1, bodyTimeout: 0, headersTimeout: 0 });

let events = 0;
let failed = 0;
/** One stream, counting SSE events (`\n\n`) on raw bytes; an event split across reads counts once. */
async function stream(): Promise<void> {
  const res = await pool.request({ method: "POST", path: "/", body: "{}" });
  if (res.statusCode !== 200) failed++;
  let tail = 0;
  for await (const c of res.body) {
    const b = c as Buffer;
    for (let i = 0; i < b.length; i++) {
      if (b[i] === 0x0a) {
        if (tail === 0x0a) events++;
        tail = 0x0a;
      } else tail = b[i]!;
    }
  }
}

const all: Promise<void>[] = [];
for (let i = 0; i < STREAMS; i++) {
  all.push(stream().catch(() => void failed++));
  // Spread the starts over one inter-token interval, so the streams' tokens do not all fall in one tick.
  if (i % 10 === 9) await new Promise((r) => setTimeout(r, (ITL_MS * 10) / STREAMS));
}
// Past the start-up: a few tokens into every stream.
await new Promise((r) => setTimeout(r, ITL_MS * 5));
const e0 = events;
const c0 = process.cpuUsage();
const t0 = performance.now();
await new Promise((r) => setTimeout(r, WINDOW_S * 1000));
const c1 = process.cpuUsage(c0);
const e1 = events;
const windowS = (performance.now() - t0) / 1000;
const tokens = e1 - e0;
const cpuUs = c1.user + c1.system;
const result = {
  streams: STREAMS,
  itl_ms: ITL_MS,
  tokens_per_s: Math.round(tokens / windowS),
  offered_tokens_per_s: Math.round((STREAMS * 1000) / ITL_MS),
  cpu_us_per_token: Math.round((cpuUs / Math.max(tokens, 1)) * 10) / 10,
  user_us_per_token: Math.round((c1.user / Math.max(tokens, 1)) * 10) / 10,
  system_us_per_token: Math.round((c1.system / Math.max(tokens, 1)) * 10) / 10,
  failed,
};
console.log(JSON.stringify(result));
await Promise.all(all);
await pool.close();
server.close();
agents.stop();
agent.forceStop();
process.exit(0);
