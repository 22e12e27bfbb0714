/**
 * vLLM's OpenAI-compatible server: /v1/chat/completions, /v1/completions,
 * /v1/embeddings, /v1/rerank, /v1/score, /tokenize, /detokenize, /health, /metrics. Streams are parsed incrementally and each chunk
 * is passed through as the engine wrote it, except the usage-only chunk, which
 * becomes the call's usage event.
 */
import { SseByteParser } from "@infera/core";
import { engineGone, normalizeEngineError, notServed, type EngineCall, type EngineSink, type EngineUsage } from "./adapter.ts";
import { engineHeaders, HttpEngineAdapter, readChunks, readText } from "./http.ts";
import { GracefulClient } from "./graceful.ts";

const PATHS = {
  chat: "/v1/chat/completions",
  completion: "/v1/completions",
  embedding: "/v1/embeddings",
  rerank: "/v1/rerank",
  score: "/v1/score",
  tokenize: "/tokenize",
  detokenize: "/detokenize",
} as const;

interface OpenAIUsage {
  prompt_tokens?: number;
  completion_tokens?: number;
  /** Rerank answers (Jina's shape) carry only this. */
  total_tokens?: number;
}

export function usageFrom(u: OpenAIUsage | undefined | null, images = 0): EngineUsage {
  return { promptTokens: u?.prompt_tokens ?? u?.total_tokens ?? 0, completionTokens: u?.completion_tokens ?? 0, images };
}

export class VllmAdapter extends HttpEngineAdapter {
  readonly kind = "vllm" as const;
  private readonly graceful: GracefulClient;

  constructor(engineUrl: string) {
    super(engineUrl);
    this.graceful = new GracefulClient(engineUrl);
  }

  async run(call: EngineCall, sink: EngineSink): Promise<void> {
    if (call.endpoint === "image") {
      sink.error(notServed("vLLM", call.endpoint));
      return;
    }
    const stop = call.stop;
    const generates = call.endpoint === "chat" || call.endpoint === "completion";
    if (stop && generates) {
      // Generation that may be stopped: the half-close transport keeps the engine's count (graceful.ts).
      const res = await this.graceful
        .post(PATHS[call.endpoint as "chat" | "completion"], call.body, call.signal, stop, engineHeaders(call))
        .catch((err: unknown) => {
          if (stop.aborted) return undefined;
          throw err;
        });
      if (!res) return sink.usage({ promptTokens: 0, completionTokens: 0, images: 0 });
      if (res.statusCode !== 200) return sink.error(normalizeEngineError(res.statusCode, await readText(res.body).catch(() => "")));
      if (call.stream) return relayOpenAIStream(res.body, sink, stop);
      const text = await readText(res.body).catch((err: unknown) => {
        if (stop.aborted) return undefined;
        throw err;
      });
      // Stopped before the engine answered: a non-streamed request the engine aborted generated nothing it reports.
      if (text === undefined) return sink.usage({ promptTokens: 0, completionTokens: 0, images: 0 });
      return relayOpenAIBody(text, sink, false);
    }
    const res = await this.pool.request({ method: "POST", path: PATHS[call.endpoint], headers: engineHeaders(call), body: call.body, signal: call.signal });
    if (res.statusCode !== 200) {
      sink.error(normalizeEngineError(res.statusCode, await readText(res.body)));
      return;
    }
    if (!call.stream || !generates) relayOpenAIBody(await readText(res.body), sink, false);
    else await relayOpenAIStream(res.body, sink);
  }

  override async close(): Promise<void> {
    this.graceful.close();
    await super.close();
  }
}

/** A whole OpenAI-shaped JSON answer: the body, then its usage (images count from `data`). */
export function relayOpenAIBody(text: string, sink: EngineSink, images: boolean): void {
  let parsed: { usage?: OpenAIUsage; data?: unknown[] };
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    sink.error(engineGone("engine returned a body that is not JSON"));
    return;
  }
  sink.body(text);
  sink.usage(usageFrom(parsed.usage, images ? (parsed.data?.length ?? 0) : 0));
}

const DONE = Buffer.from("[DONE]");
const ERROR = Buffer.from('{"error"');
const OBJECT_ERROR = Buffer.from('{"object":"error"');
const USAGE = Buffer.from('"usage":{');
const CONTINUOUS_USAGE = Buffer.from(',"usage":{');
const NO_CHOICES = Buffer.from('"choices":[]');
const CLOSE_BRACE = 0x7d;
/** `}]` and `[]` as two bytes, big-endian: what precedes `,"usage":{` in a content chunk and in the usage-only chunk. */
const CHOICES_END = (0x7d << 8) | 0x5d;
const EMPTY_CHOICES = (0x5b << 8) | 0x5d;

function startsWith(b: Buffer, prefix: Buffer): boolean {
  return b.length >= prefix.length && b.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

/**
 * Relays an OpenAI-shaped SSE stream (vLLM, TGI's Messages API) to the sink. Per token this
 * is a byte scan, never a decode or JSON parse: each chunk leaves as a view of the bytes
 * read, less the trailing continuous-usage object (cut in place, no copy); only error and
 * usage-only chunks, and the last usage on a stop, are parsed.
 */
export async function relayOpenAIStream(body: AsyncIterable<Uint8Array>, sink: EngineSink, stop?: AbortSignal): Promise<void> {
  let usage: EngineUsage | undefined;
  /** The newest cumulative usage the engine reported (continuous_usage_stats), as JSON bytes. */
  let latest: Buffer | undefined;
  let done = false;
  let failed = false;
  let contentChunks = 0;
  const parser = new SseByteParser((data) => {
    if (done || failed) return;
    if (data.length === DONE.length && data.equals(DONE)) {
      done = true;
      return;
    }
    if (startsWith(data, ERROR) || startsWith(data, OBJECT_ERROR)) {
      failed = true;
      const text = data.toString();
      const parsed = safeParse(text) as { error?: { code?: unknown } } | undefined;
      const code = parsed?.error?.code;
      sink.error(normalizeEngineError(typeof code === "number" ? code : 500, text));
      return;
    }
    const u = data.lastIndexOf(CONTINUOUS_USAGE);
    // The usage-only chunk (include_usage): `"choices":[]` with a usage object. Engines write
    // `…}]` (a content chunk's choices) or `[]` right before the usage: read those two bytes
    // rather than scanning the chunk again; anything else is scanned.
    const before = u >= 2 ? (data[u - 2]! << 8) | data[u - 1]! : 0;
    const usageOnly =
      before === CHOICES_END ? false : before === EMPTY_CHOICES ? true : (u !== -1 || data.indexOf(USAGE) !== -1) && data.indexOf(NO_CHOICES) !== -1;
    if (usageOnly) {
      usage = usageFrom((safeParse(data.toString()) as { usage?: OpenAIUsage } | undefined)?.usage);
      latest = undefined;
      return;
    }
    contentChunks++;
    if (u === -1) {
      sink.chunk(data);
      return;
    }
    // The usage object is the chunk's last member: `…,"usage":{…}}`; the client did not ask for it.
    latest = data.subarray(u + 9, data.length - 1);
    // Cut in place: the chunk ends where the usage began (its comma becomes the closing brace).
    // These bytes are this relay's (a socket read, or the parser's own copy of one) and
    // nothing reads that comma again; `latest` starts past it.
    data[u] = CLOSE_BRACE;
    sink.chunk(data.subarray(0, u + 1));
  });
  try {
    await readChunks(body, (c) => {
      parser.push(c);
      return !failed;
    });
    if (failed) return;
  } catch (err) {
    // Stopped: the engine closed its side after our FIN; what it wrote has been read.
    if (!stop?.aborted) throw err;
  }
  parser.end();
  if (failed) return;
  if (stop?.aborted && !done) {
    const u = latest === undefined ? usage : usageFrom(safeParse(latest.toString()) as OpenAIUsage | undefined);
    sink.usage(u ?? { promptTokens: 0, completionTokens: 0, images: 0 });
    return;
  }
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
