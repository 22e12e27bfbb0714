/**
 * Measures how fast the sim emits streamed tokens: starts the sim in a child process (one
 * core), opens `--streams` concurrent streaming chat requests of `--tokens` tokens each over
 * keep-alive connections, and reports tokens/s (wall), tokens per CPU-second of the sim
 * process (what one core can emit; the client shares the machine), and the observed
 * inter-token gap and time to first token.
 *
 *   pnpm tsx services/engine-sim/src/bench.ts --streams 2000 --tokens 200 --itl 0
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    streams: { type: "string", default: "2000" },
    tokens: { type: "string", default: "200" },
    itl: { type: "string", default: "0" },
    ttft: { type: "string", default: "0" },
    port: { type: "string", default: "18555" },
  },
});
const streams = Number(values.streams);
const tokens = Number(values.tokens);
const port = Number(values.port);

const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(new URL("./main.ts", import.meta.url))], {
  env: {
    ...process.env,
    PORT: String(port),
    SIM_TTFT_MS: values.ttft,
    SIM_ITL_MS: values.itl,
    SIM_PREFILL_US_PER_TOKEN: "0",
    SIM_MAX_NUM_SEQS: String(Math.max(streams, 256)),
    SIM_LOAD_FACTOR: "1",
    LOG_LEVEL: "warn",
  },
  stdio: ["ignore", "inherit", "inherit"],
});

/** CPU seconds the sim process has used (Linux /proc; NaN elsewhere). */
function simCpuSeconds(): number {
  try {
    const fields = readFileSync(`/proc/${child.pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

async function waitHealthy(): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/health`)).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("sim did not start");
}

const agent = new Agent({ keepAlive: true, maxSockets: streams });
const body = JSON.stringify({
  messages: [{ role: "user", content: "Benchmark prompt: tell me a long story." }],
  max_tokens: tokens,
  ignore_eos: true,
  stream: true,
  stream_options: { include_usage: true },
});

interface StreamResult {
  headersAt: number;
  tokens: number;
  firstAt: number;
  lastAt: number;
  chunks: number;
}

function oneStream(): Promise<StreamResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path: "/v1/chat/completions",
        method: "POST",
        agent,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        const headersAt = performance.now();
        let firstAt = 0;
        let lastAt = 0;
        let chunks = 0;
        let tail = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          const now = performance.now();
          if (firstAt === 0) firstAt = now;
          lastAt = now;
          chunks++;
          tail = (tail + d).slice(-400);
        });
        res.on("end", () => {
          const m = /"completion_tokens":(\d+)/.exec(tail);
          resolve({ headersAt, tokens: m ? Number(m[1]) : 0, firstAt, lastAt, chunks });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

try {
  await waitHealthy();
  // Warm-up: tokenizer caches, JIT.
  await Promise.all(Array.from({ length: 50 }, oneStream));
  const cpu0 = simCpuSeconds();
  const t0 = performance.now();
  const results = await Promise.all(Array.from({ length: streams }, oneStream));
  const wall = (performance.now() - t0) / 1000;
  const cpu = simCpuSeconds() - cpu0;
  const total = results.reduce((n, r) => n + r.tokens, 0);
  const gaps = results.map((r) => (r.tokens > 1 ? (r.lastAt - r.firstAt) / (r.tokens - 1) : 0)).sort((a, b) => a - b);
  const p50 = gaps[Math.floor(gaps.length / 2)] ?? 0;
  const firsts = results.map((r) => r.firstAt - t0).sort((a, b) => a - b);
  const ttftP50 = firsts[Math.floor(firsts.length / 2)] ?? 0;
  const ttftMax = firsts[firsts.length - 1] ?? 0;
  const heads = results.map((r) => r.headersAt - t0).sort((a, b) => a - b);
  const headersP50 = heads[Math.floor(heads.length / 2)] ?? 0;
  console.log(
    JSON.stringify({
      streams,
      tokensPerStream: tokens,
      itlMs: Number(values.itl),
      wallS: Number(wall.toFixed(3)),
      totalTokens: total,
      tokensPerS: Math.round(total / wall),
      simCpuS: Number(cpu.toFixed(2)),
      tokensPerSimCpuS: Math.round(total / cpu),
      observedItlP50Ms: Number(p50.toFixed(2)),
      ttftP50Ms: Math.round(ttftP50),
      ttftMaxMs: Math.round(ttftMax),
      headersP50Ms: Math.round(headersP50),
    }),
  );
} finally {
  agent.destroy();
  child.kill("SIGTERM");
}
