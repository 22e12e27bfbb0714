/**
 * A bounded soak: a steady rate of mixed traffic (streamed and whole chat answers,
 * embeddings, clients that disconnect mid-stream) for SOAK_SECONDS (quick profile 30 s;
 * set SOAK_SECONDS=600 for the long one), sampling the gateway's resident memory and open
 * descriptors. Memory and handles must stay flat within a generous bound, and no answer
 * may be an error other than a 429/503 by design.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { metricSum, parseMetrics, sampleProcess, servicePids, startPlatform, type Platform, type ProcessSample } from "@infera/testkit";
import { chatCall, isOpenAIError, MODEL, sleep } from "../faults/harness.ts";

const SOAK_SECONDS = Number(process.env.SOAK_SECONDS ?? 30);
const RATE_PER_S = Number(process.env.SOAK_RATE ?? 12);

let platform: Platform;
let gatewayPid = 0;

beforeAll(async () => {
  platform = await startPlatform({ label: "soak", readyTimeoutMs: 240_000, catalog: ["chat", "embeddings"], env: { SIM_TTFT_MS: "10", SIM_ITL_MS: "5" } });
  gatewayPid = servicePids(platform.pid, "gateway")[0] ?? 0;
  expect(gatewayPid).toBeGreaterThan(0);
}, 300_000);
afterAll(async () => {
  await platform?.stop();
}, 120_000);

type Kind = "stream" | "whole" | "embedding" | "disconnect";

async function one(kind: Kind, i: number): Promise<string> {
  const requestId = `soak-${randomBytes(3).toString("hex")}-${i}`;
  if (kind === "stream" || kind === "whole") {
    const r = await chatCall({
      baseURL: platform.baseURL,
      key: platform.adminKey,
      requestId,
      maxTokens: 5 + (i % 30),
      stream: kind === "stream",
      timeoutMs: 30_000,
    });
    return r.outcome.kind === "completed" ? "ok" : r.outcome.kind === "error" ? `error:${r.outcome.status}` : `${r.outcome.kind}:${JSON.stringify(r.outcome)}`;
  }
  if (kind === "embedding") {
    const res = await fetch(`${platform.openaiURL}/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${platform.adminKey}`, "x-request-id": requestId },
      body: JSON.stringify({ model: "BAAI/bge-large-en-v1.5", input: [`soak ${i}`, "the quick brown fox"] }),
      signal: AbortSignal.timeout(30_000),
    });
    const j = (await res.json()) as unknown;
    if (res.status === 200) return "ok";
    return isOpenAIError(j) ? `error:${res.status}` : `violation:${res.status}`;
  }
  // A client that goes away mid-stream.
  const ac = new AbortController();
  const hard = setTimeout(() => ac.abort(), 30_000);
  try {
    const res = await fetch(`${platform.openaiURL}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${platform.adminKey}`, "x-request-id": requestId },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: `go away ${i}` }], max_tokens: 200, stream: true }),
      signal: ac.signal,
    });
    if (res.status !== 200) return `error:${res.status}`;
    const reader = res.body!.getReader();
    await reader.read();
    ac.abort();
    return "ok";
  } catch (err) {
    return ac.signal.aborted ? "ok" : `violation:${(err as Error).message}`;
  } finally {
    clearTimeout(hard);
  }
}

describe(`soak: ${SOAK_SECONDS} s at ${RATE_PER_S} requests/s, mixed streamed, whole, embeddings and disconnects`, () => {
  const samples: ProcessSample[] = [];
  const outcomes: Record<string, number> = {};

  it(
    "runs the load, sampling the gateway's memory and open descriptors",
    async () => {
      // Warm up (JIT, pools, caches), then measure from a settled baseline.
      await Promise.all(Array.from({ length: 20 }, (_, i) => one((["stream", "whole", "embedding", "disconnect"] as const)[i % 4]!, i)));
      await sleep(1000);
      const pending = new Set<Promise<void>>();
      const end = Date.now() + SOAK_SECONDS * 1000;
      let i = 0;
      let nextSample = Date.now();
      while (Date.now() < end) {
        const kind: Kind = (["stream", "stream", "whole", "embedding", "disconnect"] as const)[i % 5]!;
        const p = one(kind, i++).then((o) => {
          outcomes[o] = (outcomes[o] ?? 0) + 1;
        });
        pending.add(p);
        void p.finally(() => pending.delete(p));
        if (Date.now() >= nextSample) {
          const s = sampleProcess(gatewayPid);
          if (s) samples.push(s);
          nextSample = Date.now() + 1000;
        }
        if (pending.size > 200) await Promise.race(pending);
        await sleep(1000 / RATE_PER_S);
      }
      await Promise.all(pending);
      await sleep(1500);
      const s = sampleProcess(gatewayPid);
      if (s) samples.push(s);
      console.log("[soak] outcomes", outcomes, "samples (rss MiB, fds)", samples.map((x) => `${Math.round(x.rssKb / 1024)}/${x.fds}`).join(" "));
      expect(samples.length).toBeGreaterThan(3);
    },
    (SOAK_SECONDS + 180) * 1000,
  );

  it("no error other than a 429/503 by design", () => {
    const bad = Object.keys(outcomes).filter((k) => k !== "ok" && k !== "error:429" && k !== "error:503");
    expect(bad).toEqual([]);
    expect(outcomes.ok ?? 0).toBeGreaterThan(SOAK_SECONDS * RATE_PER_S * 0.5);
  });

  it("the gateway's memory stays flat (second half vs first half, generous bound)", () => {
    const half = Math.floor(samples.length / 2);
    const maxOf = (xs: ProcessSample[]) => Math.max(...xs.map((x) => x.rssKb));
    const first = maxOf(samples.slice(0, half));
    const second = maxOf(samples.slice(half));
    // Growth beyond 50% + 64 MiB over the run would be a leak, not GC noise.
    expect(second).toBeLessThan(first * 1.5 + 64 * 1024);
  });

  it("the gateway's open descriptors return to where they started (no leaked sockets)", () => {
    const first = samples[0]!.fds;
    const last = samples.at(-1)!.fds;
    expect(last).toBeLessThanOrEqual(first + 20);
    expect(Math.max(...samples.map((x) => x.fds))).toBeLessThan(first + 400);
  });

  it("the gateway still serves and has no stream open", async () => {
    const r = await chatCall({
      baseURL: platform.baseURL,
      key: platform.adminKey,
      requestId: `soak-after-${randomBytes(4).toString("hex")}`,
      maxTokens: 3,
      stream: true,
    });
    expect(r.outcome.kind).toBe("completed");
    const m = await (await fetch(`${platform.baseURL}/metrics`)).text();
    expect(metricSum(parseMetrics(m), "gateway_open_streams")).toBe(0);
  });
});
