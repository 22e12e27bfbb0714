/**
 * vLLM's OpenAI-compatible server: /v1/chat/completions, /v1/completions,
 * /v1/embeddings, /health, /metrics. Streams are parsed incrementally and each chunk
 * is passed through as the engine wrote it, except the usage-only chunk, which
 * becomes the call's usage event.
 */
import { SseParser } from "@infera/core";
import type { Pool } from "undici";
import { engineGone, normalizeEngineError, type EngineAdapter, type EngineCall, type EngineLoad, type EngineSink, type EngineUsage } from "./adapter.ts";
import { enginePool, readText } from "./http.ts";
import { parseEngineLoad } from "./load.ts";

const PATHS = { chat: "/v1/chat/completions", completion: "/v1/completions", embedding: "/v1/embeddings", image: "/v1/images/generations" } as const;
const JSON_HEADERS = { "content-type": "application/json" };

interface OpenAIUsage {
  prompt_tokens?: number;
  completion_tokens?: number;
}

export function usageFrom(u: OpenAIUsage | undefined | null, images = 0): EngineUsage {
  return { promptTokens: u?.prompt_tokens ?? 0, completionTokens: u?.completion_tokens ?? 0, images };
}

export class VllmAdapter implements EngineAdapter {
  readonly kind: "vllm" | "image" = "vllm";
  protected readonly pool: Pool;

  constructor(engineUrl: string) {
    this.pool = enginePool(engineUrl);
  }

  async run(call: EngineCall, sink: EngineSink): Promise<void> {
    const res = await this.pool.request({ method: "POST", path: PATHS[call.endpoint], headers: JSON_HEADERS, body: call.body, signal: call.signal });
    if (res.statusCode !== 200) {
      sink.error(normalizeEngineError(res.statusCode, await readText(res.body)));
      return;
    }
    if (!call.stream) {
      const text = await readText(res.body);
      let parsed: { usage?: OpenAIUsage; data?: unknown[] };
      try {
        parsed = JSON.parse(text) as typeof parsed;
      } catch {
        sink.error(engineGone("engine returned a body that is not JSON"));
        return;
      }
      sink.body(text);
      sink.usage(usageFrom(parsed.usage, call.endpoint === "image" ? (parsed.data?.length ?? 0) : 0));
      return;
    }
    await relayOpenAIStream(res.body, sink);
  }

  async health(): Promise<boolean> {
    try {
      const res = await this.pool.request({ method: "GET", path: "/health", headersTimeout: 2000, bodyTimeout: 2000 });
      await res.body.dump();
      return res.statusCode === 200;
    } catch {
      return false;
    }
  }

  async load(): Promise<EngineLoad | undefined> {
    try {
      const res = await this.pool.request({ method: "GET", path: "/metrics", headersTimeout: 2000, bodyTimeout: 2000 });
      if (res.statusCode !== 200) {
        await res.body.dump();
        return undefined;
      }
      return parseEngineLoad(await readText(res.body));
    } catch {
      return undefined;
    }
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

/** Relays an OpenAI-shaped SSE stream (vLLM, TGI's Messages API) to the sink. */
export async function relayOpenAIStream(body: AsyncIterable<Uint8Array>, sink: EngineSink): Promise<void> {
  let usage: EngineUsage | undefined;
  let done = false;
  let failed = false;
  let contentChunks = 0;
  const parser = new SseParser((data) => {
    if (done || failed) return;
    if (data === "[DONE]") {
      done = true;
      return;
    }
    if (data.startsWith('{"error"') || data.startsWith('{"object":"error"')) {
      failed = true;
      const parsed = safeParse(data) as { error?: { code?: unknown } } | undefined;
      const code = parsed?.error?.code;
      sink.error(normalizeEngineError(typeof code === "number" ? code : 500, data));
      return;
    }
    // The usage-only chunk (include_usage): `"choices":[]` with a usage object.
    if (data.includes('"usage":{') && data.includes('"choices":[]')) {
      const parsed = safeParse(data) as { usage?: OpenAIUsage } | undefined;
      usage = usageFrom(parsed?.usage);
      return;
    }
    contentChunks++;
    sink.chunk(data);
  });
  for await (const c of body) {
    parser.push(c);
    if (failed) return;
  }
  parser.end();
  if (failed) return;
  if (!done && !usage) {
    sink.error(engineGone("the engine closed the stream before it finished"));
    return;
  }
  sink.usage(usage ?? { promptTokens: 0, completionTokens: contentChunks, images: 0 });
}

function safeParse(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}
