/**
 * Prompts whose answers run long enough. engine-sim ends an answer by itself after a
 * deterministic 16–256 tokens (a hash of the prompt), and the platform's OpenAI surface
 * (rightly) refuses vLLM's `ignore_eos`; so the bench asks an in-process engine-sim
 * (same code, zero latency) how long each candidate prompt's answer is, and keeps those
 * that reach the length a phase asks for with `max_tokens` — then every stream, direct
 * or through a gateway, is exactly `max_tokens` tokens.
 */
import { createEngineSim } from "@infera/engine-sim";

export interface PromptPool {
  /** Prompts (user message text) whose natural answer has at least `minTokens` tokens. */
  atLeast(minTokens: number): string[];
}

export async function probePrompts(candidates: number): Promise<PromptPool> {
  const sim = createEngineSim({ mode: "vllm", ttftMs: 0, itlMs: 0, prefillUsPerToken: 0, jitter: 0, logLevel: "silent" });
  await sim.start(0, "127.0.0.1");
  const lengths: { text: string; tokens: number }[] = [];
  try {
    for (let k = 0; k < candidates; k++) {
      const text = `Benchmark request ${k}: describe a city you would like to visit.`;
      const res = await fetch(`${sim.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "meta-llama/Meta-Llama-3-8B-Instruct", messages: [{ role: "user", content: text }], max_tokens: 1000 }),
      });
      const j = (await res.json()) as { usage?: { completion_tokens?: number } };
      // The natural answer ends with EOS, which counts as a token; max_tokens below it is never cut short.
      lengths.push({ text, tokens: (j.usage?.completion_tokens ?? 0) - 1 });
    }
  } finally {
    await sim.stop();
  }
  return {
    atLeast(minTokens) {
      const out = lengths.filter((l) => l.tokens >= minTokens).map((l) => l.text);
      if (out.length === 0) throw new Error(`no probed prompt answers with ${minTokens} tokens`);
      return out;
    },
  };
}
