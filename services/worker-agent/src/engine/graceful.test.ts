/**
 * Graceful stop against engine-sim (real HTTP): with continuous usage stats every chunk
 * carries the running count (stripped before the client sees it), and a stopped request
 * ends with a usage equal, token for token, to what the engine says it generated — at any
 * moment of the stream, including before the first token.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngineSim, type EngineSim } from "@infera/engine-sim";
import { waitFor } from "@infera/testkit";
import type { EngineSink, EngineUsage, NormalizedError } from "./adapter.ts";
import { VllmAdapter } from "./vllm.ts";

const MODEL = "meta-llama/Meta-Llama-3-8B-Instruct";
let sim: EngineSim;
let adapter: VllmAdapter;

beforeAll(async () => {
  sim = createEngineSim({ ttftMs: 20, itlMs: 4, prefillUsPerToken: 0, jitter: 0, logLevel: "silent" });
  await sim.start(0, "127.0.0.1");
  adapter = new VllmAdapter(sim.url);
});
afterAll(async () => {
  await adapter.close();
  await sim.stop();
});

async function stats(): Promise<{ promptTokens: number; completionTokens: number; running: number }> {
  return (await (await fetch(`${sim.url}/sim/stats`)).json()) as { promptTokens: number; completionTokens: number; running: number };
}

function body(stream: boolean, maxTokens: number): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({
      model: MODEL,
      messages: [{ role: "user", content: "Tell me a long story about lamb." }],
      max_tokens: maxTokens,
      stream,
      ...(stream ? { stream_options: { include_usage: true, continuous_usage_stats: true } } : {}),
    }),
  );
}

function sink(): { sink: EngineSink; chunks: string[]; usage: () => EngineUsage | undefined; error: () => NormalizedError | undefined } {
  const chunks: string[] = [];
  let usage: EngineUsage | undefined;
  let error: NormalizedError | undefined;
  return {
    chunks,
    usage: () => usage,
    error: () => error,
    sink: {
      chunk: (j) => chunks.push(typeof j === "string" ? j : Buffer.from(j).toString()),
      body: () => {},
      usage: (u) => (usage = u),
      error: (e) => (error = e),
    },
  };
}

describe("continuous usage and graceful stop", () => {
  it("strips the running usage from chunks; the final usage is the engine's", async () => {
    const s = sink();
    await adapter.run(
      { endpoint: "chat", body: body(true, 12), stream: true, signal: new AbortController().signal, stop: new AbortController().signal },
      s.sink,
    );
    expect(s.error()).toBeUndefined();
    expect(s.usage()?.completionTokens).toBe(12);
    expect(s.chunks.length).toBeGreaterThan(3);
    for (const c of s.chunks) {
      expect(c).not.toContain('"usage"');
      expect((JSON.parse(c) as { object: string }).object).toBe("chat.completion.chunk");
    }
  });

  it("a stopped request reports exactly what the engine generated, whenever it stops", async () => {
    let midStream = 0;
    for (const stopAfterMs of [0, 5, 15, 30, 60, 120, 200, 400]) {
      for (const stream of [true, false]) {
        const before = await stats();
        const stop = new AbortController();
        const s = sink();
        const t = setTimeout(() => stop.abort(), stopAfterMs);
        await adapter.run({ endpoint: "chat", body: body(stream, 200), stream, signal: new AbortController().signal, stop: stop.signal }, s.sink);
        clearTimeout(t);
        await waitFor("the engine to finish the stopped request", async () => (await stats()).running === 0);
        const after = await stats();
        expect(s.error(), `${stopAfterMs} ms`).toBeUndefined();
        expect(s.usage(), `${stopAfterMs} ms, stream ${stream}`).toEqual({
          promptTokens: after.promptTokens - before.promptTokens,
          completionTokens: after.completionTokens - before.completionTokens,
          images: 0,
        });
        const c = s.usage()?.completionTokens ?? 0;
        if (stream && c > 0 && c < 200) midStream++;
      }
    }
    // Some stops landed mid-stream (neither nothing nor everything generated).
    expect(midStream).toBeGreaterThan(2);
  });
});
