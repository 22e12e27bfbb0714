import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EngineSim } from "./server.ts";
import { parseSse, postJson, startSim } from "./test-client.ts";
import { encode } from "./tokenizer.ts";

interface TgiToken {
  id: number;
  text: string;
  logprob: number;
  special: boolean;
}
interface StreamFrame {
  index: number;
  token: TgiToken;
  generated_text: string | null;
  details: { finish_reason: string; generated_tokens: number; seed: number | null } | null;
}
interface GenerateResponse {
  generated_text: string;
  details?: {
    finish_reason: string;
    generated_tokens: number;
    seed: number | null;
    tokens: TgiToken[];
    prefill: { id: number; text: string; logprob: number | null }[];
  };
}
interface TgiError {
  error: string;
  error_type: string;
}

let sim: EngineSim;
beforeAll(async () => {
  sim = await startSim({ mode: "tgi" });
});
afterAll(async () => {
  await sim.stop();
});

describe("TGI API", () => {
  it("generate answers text, details and timing headers", async () => {
    const res = await postJson(`${sim.url}/generate`, {
      inputs: "What is deep learning?",
      parameters: { max_new_tokens: 9, details: true, decoder_input_details: true },
    });
    expect(res.status).toBe(200);
    for (const h of ["x-queue-time", "x-inference-time", "x-time-per-token", "x-prompt-tokens", "x-generated-tokens"])
      expect(res.headers.get(h)).not.toBeNull();
    expect(res.headers.get("x-generated-tokens")).toBe("9");
    expect(res.headers.get("x-prompt-tokens")).toBe(String(encode("What is deep learning?", { bos: true }).length));
    const body = (await res.json()) as GenerateResponse;
    expect(body.details?.finish_reason).toBe("length");
    expect(body.details?.generated_tokens).toBe(9);
    expect(body.details?.tokens.map((t) => t.text).join("")).toBe(body.generated_text);
    expect(body.details?.prefill[0]?.logprob).toBeNull();
  });

  it("generate_stream sends token frames, the full text and details on the last one, and no [DONE]", async () => {
    const res = await postJson(`${sim.url}/generate_stream`, {
      inputs: "What is deep learning?",
      parameters: { max_new_tokens: 2000, seed: 3, do_sample: true },
    });
    expect(res.status).toBe(200);
    const frames = parseSse(await res.text());
    expect(frames).not.toContain("[DONE]");
    const parsed = frames.map((f) => JSON.parse(f) as StreamFrame);
    expect(parsed.map((f) => f.index)).toEqual(parsed.map((_, i) => i + 1));
    const last = parsed[parsed.length - 1];
    expect(parsed.slice(0, -1).every((f) => f.generated_text === null && f.details === null)).toBe(true);
    expect(last?.details?.finish_reason).toBe("eos_token");
    expect(last?.token.special).toBe(true);
    expect(last?.details?.generated_tokens).toBe(parsed.length);
    expect(last?.details?.seed).toBe(3);
    expect(
      parsed
        .slice(0, -1)
        .map((f) => f.token.text)
        .join(""),
    ).toBe(last?.generated_text);
  });

  it("keeps the stop sequence in the text and reports stop_sequence", async () => {
    const full = ((await (await postJson(`${sim.url}/generate`, { inputs: "Tell me", parameters: { max_new_tokens: 40 } })).json()) as GenerateResponse)
      .generated_text;
    const stop = ` ${full.split(" ")[3]}`;
    const res = (await (
      await postJson(`${sim.url}/generate`, { inputs: "Tell me", parameters: { max_new_tokens: 40, stop: [stop], details: true } })
    ).json()) as GenerateResponse;
    expect(res.generated_text).toBe(full.slice(0, full.indexOf(stop) + stop.length));
    expect(res.details?.finish_reason).toBe("stop_sequence");
  });

  it("answers validation errors with 422 and TGI's error shape", async () => {
    const res = await postJson(`${sim.url}/generate`, { inputs: "hi", parameters: { temperature: 0 } });
    expect(res.status).toBe(422);
    expect((await res.json()) as TgiError).toEqual({ error: "Input validation error: `temperature` must be strictly positive", error_type: "validation" });
    const empty = await postJson(`${sim.url}/generate`, { inputs: "" });
    expect(empty.status).toBe(422);
    const long = await postJson(`${sim.url}/generate`, { inputs: "hi", parameters: { max_new_tokens: 100_000 } });
    expect(long.status).toBe(422);
    expect(((await long.json()) as TgiError).error).toContain("must be <= 8192");
  });

  it("answers overload as 429 overloaded and in-stream errors as a data frame", async () => {
    await postJson(`${sim.url}/sim/faults`, { rate: 1, kinds: ["rate_limited"] });
    const limited = await postJson(`${sim.url}/generate`, { inputs: "hi" });
    expect(limited.status).toBe(429);
    expect((await limited.json()) as TgiError).toEqual({ error: "Model is overloaded", error_type: "overloaded" });
    await postJson(`${sim.url}/sim/faults`, { rate: 1, kinds: ["stream_error"] });
    const streamed = await postJson(`${sim.url}/generate_stream`, { inputs: "hi", parameters: { max_new_tokens: 10 } });
    expect(streamed.status).toBe(200);
    const frames = parseSse(await streamed.text());
    const last = JSON.parse(frames[frames.length - 1] ?? "{}") as TgiError;
    expect(last.error_type).toBe("generation");
    expect(frames).not.toContain("[DONE]");
    await postJson(`${sim.url}/sim/faults`, { rate: 0, kinds: [] });
  });

  it("serves /info, /health, the Messages API with [DONE], and TGI metrics", async () => {
    const info = (await (await fetch(`${sim.url}/info`)).json()) as { model_id: string; max_input_tokens: number; max_total_tokens: number };
    expect(info).toMatchObject({ model_id: "meta-llama/Meta-Llama-3-8B-Instruct", max_input_tokens: 8191, max_total_tokens: 8192 });
    expect((await fetch(`${sim.url}/health`)).status).toBe(200);
    const ok = await postJson(`${sim.url}/v1/chat/completions`, { messages: [{ role: "user", content: "hi" }], stream: true, max_tokens: 3 });
    const frames = parseSse(await ok.text());
    expect(frames[frames.length - 1]).toBe("[DONE]");
    const metrics = await (await fetch(`${sim.url}/metrics`)).text();
    for (const name of [
      "tgi_queue_size",
      "tgi_batch_current_size",
      "tgi_request_duration",
      "tgi_request_queue_duration",
      "tgi_request_generated_tokens",
      "tgi_request_failure",
    ]) {
      expect(metrics).toContain(`# TYPE ${name} `);
    }
    expect(metrics).toMatch(/tgi_request_failure\{model_name="[^"]+",err="overloaded"\} 1/);
  });
});
