/**
 * text-generation-inference. Chat goes to its Messages API (`/v1/chat/completions`,
 * OpenAI-shaped, ends with `[DONE]`) with the attributes TGI knows. Text completions go
 * to its native API: `/generate_stream` (frames `{"token":{id,text,logprob,special},
 * "generated_text","details"}`, the last one carrying the details, and no `[DONE]`) or
 * `/generate`, turned into OpenAI `text_completion` chunks/bodies. TGI keeps a matched
 * stop sequence in its text and OpenAI does not: the adapter holds back text that could
 * be the start of a stop sequence and drops the one that matched; the last frame's
 * `generated_text` settles the end.
 */
import { randomBytes } from "node:crypto";
import { SseParser } from "@infera/core";
import { engineGone, normalizeEngineError, notServed, unsupportedParam, type EngineCall, type EngineSink } from "./adapter.ts";
import { engineHeaders, HttpEngineAdapter, readChunks, readText } from "./http.ts";
import { relayOpenAIBody, relayOpenAIStream } from "./vllm.ts";

const TGI = "text-generation-inference";

/** The Messages API's request fields (TGI 3.x `ChatRequest`). */
const CHAT_FIELDS = [
  "model",
  "messages",
  "frequency_penalty",
  "presence_penalty",
  "logprobs",
  "top_logprobs",
  "max_tokens",
  "n",
  "seed",
  "stop",
  "stream",
  "stream_options",
  "temperature",
  "top_p",
  "tools",
  "tool_choice",
  "response_format",
] as const;

/** A regex that matches exactly one of the strings (vLLM's guided_choice as TGI's regex grammar). */
function choiceRegex(choices: readonly string[]): string {
  return `(${choices.map((c) => c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})`;
}

/**
 * vLLM's structured outputs as TGI's grammar (`{"type": "json" | "regex", "value"}`): a JSON
 * schema, a regex, or a choice (as a regex). The gateway has refused what TGI has no grammar for.
 */
export function tgiGrammar(b: Record<string, unknown>): { type: "json" | "regex"; value: unknown } | undefined {
  const so = (b.structured_outputs ?? {}) as Record<string, unknown>;
  const json = so.json ?? b.guided_json;
  if (json != null) return { type: "json", value: typeof json === "string" ? JSON.parse(json) : json };
  const regex = so.regex ?? b.guided_regex;
  if (typeof regex === "string") return { type: "regex", value: regex };
  const choice = so.choice ?? b.guided_choice;
  if (Array.isArray(choice)) return { type: "regex", value: choiceRegex(choice as string[]) };
  return undefined;
}

interface CompletionBody {
  model: string;
  prompt: string | string[] | number[];
  max_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  top_k?: number | null;
  repetition_penalty?: number | null;
  frequency_penalty?: number | null;
  presence_penalty?: number | null;
  seed?: number | null;
  stop?: string | string[] | null;
  n?: number | null;
  logprobs?: number | null;
  echo?: boolean | null;
  min_p?: number | null;
}

interface TgiDetails {
  finish_reason: "length" | "eos_token" | "stop_sequence";
  generated_tokens: number;
  input_length?: number;
}

interface TgiFrame {
  token?: { id: number; text: string; special: boolean };
  generated_text?: string | null;
  details?: TgiDetails | null;
  error?: string;
  error_type?: string;
}

const FINISH: Record<TgiDetails["finish_reason"], "length" | "stop"> = { length: "length", eos_token: "stop", stop_sequence: "stop" };

function stopsOf(stop: CompletionBody["stop"]): string[] {
  if (stop == null) return [];
  return (typeof stop === "string" ? [stop] : stop).filter((s) => s.length > 0);
}

/** OpenAI sampling attributes as TGI `parameters`. OpenAI samples at temperature 1 unless told 0 (greedy). */
export function tgiParameters(b: CompletionBody, details: boolean): Record<string, unknown> {
  const p: Record<string, unknown> = { max_new_tokens: b.max_tokens ?? 16, details };
  const greedy = b.temperature === 0 || (b.top_p != null && b.top_p <= 0);
  if (!greedy) {
    p.do_sample = true;
    if (b.temperature != null) p.temperature = b.temperature;
    if (b.top_p != null && b.top_p < 1) p.top_p = b.top_p;
    if (b.top_k != null && b.top_k > 0) p.top_k = b.top_k;
  }
  if (b.repetition_penalty != null) p.repetition_penalty = b.repetition_penalty;
  if (b.frequency_penalty != null && b.frequency_penalty !== 0) p.frequency_penalty = b.frequency_penalty;
  if (b.seed != null) p.seed = b.seed;
  const stop = stopsOf(b.stop);
  if (stop.length) p.stop = stop;
  return p;
}

/** Holds back streamed text that may be the beginning of a stop sequence. */
export class StopHoldback {
  private buffer = "";

  constructor(private readonly stops: readonly string[]) {}

  /** Adds text; returns what can be sent now. */
  push(text: string): string {
    this.buffer += text;
    let keep = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length, this.buffer.length); k > keep; k--) {
        if (this.buffer.endsWith(s.slice(0, k))) {
          keep = k;
          break;
        }
      }
    }
    const out = this.buffer.slice(0, this.buffer.length - keep);
    this.buffer = this.buffer.slice(this.buffer.length - keep);
    return out;
  }

  /** The end: what is left, less the stop sequence the text ended with. */
  end(stoppedOnSequence: boolean): string {
    const rest = this.buffer;
    this.buffer = "";
    return stoppedOnSequence ? stripStop(rest, this.stops) : rest;
  }
}

/** `text` less a stop sequence it ends with (the longest that matches). */
export function stripStop(text: string, stops: readonly string[]): string {
  const hit = stops.filter((s) => text.endsWith(s)).sort((a, b) => b.length - a.length)[0];
  return hit === undefined ? text : text.slice(0, text.length - hit.length);
}

export class TgiAdapter extends HttpEngineAdapter {
  readonly kind = "tgi" as const;

  async run(call: EngineCall, sink: EngineSink): Promise<void> {
    if (call.endpoint === "chat") return this.chat(call, sink);
    if (call.endpoint === "completion") return this.completion(call, sink);
    if (call.endpoint === "tokenize") return this.tokenize(call, sink);
    sink.error(notServed(TGI, call.endpoint));
  }

  /** vLLM's /tokenize shape from TGI's /tokenize (`{inputs}` → `[{id, text, start, stop}]`); a prompt only. */
  private async tokenize(call: EngineCall, sink: EngineSink): Promise<void> {
    const body = JSON.parse(Buffer.from(call.body).toString("utf8")) as { prompt?: unknown; return_token_strs?: boolean | null };
    if (typeof body.prompt !== "string") return sink.error(unsupportedParam(TGI, "messages", "on tokenize (send a prompt)"));
    const res = await this.pool.request({
      method: "POST",
      path: "/tokenize",
      headers: engineHeaders(call),
      body: JSON.stringify({ inputs: body.prompt }),
      signal: call.signal,
    });
    const text = await readText(res.body);
    if (res.statusCode !== 200) return sink.error(normalizeEngineError(res.statusCode, text));
    const tokens = JSON.parse(text) as { id: number; text: string }[];
    sink.body(
      JSON.stringify({
        count: tokens.length,
        max_model_len: null,
        tokens: tokens.map((t) => t.id),
        token_strs: body.return_token_strs ? tokens.map((t) => t.text) : null,
      }),
    );
    sink.usage({ promptTokens: 0, completionTokens: 0, images: 0 });
  }

  private async chat(call: EngineCall, sink: EngineSink): Promise<void> {
    const body = JSON.parse(Buffer.from(call.body).toString("utf8")) as Record<string, unknown>;
    if (typeof body.n === "number" && body.n > 1) return sink.error(unsupportedParam(TGI, "n", "greater than 1"));
    const out: Record<string, unknown> = {};
    for (const f of CHAT_FIELDS) if (body[f] !== undefined && body[f] !== null) out[f] = body[f];
    if (body.max_completion_tokens != null) out.max_tokens = body.max_completion_tokens;
    const grammar = tgiGrammar(body);
    if (grammar) out.response_format = grammar;
    const res = await this.pool.request({
      method: "POST",
      path: "/v1/chat/completions",
      headers: engineHeaders(call),
      body: JSON.stringify(out),
      signal: call.signal,
    });
    if (res.statusCode !== 200) return sink.error(normalizeEngineError(res.statusCode, await readText(res.body)));
    if (!call.stream) relayOpenAIBody(await readText(res.body), sink, false);
    else await relayOpenAIStream(res.body, sink);
  }

  private async completion(call: EngineCall, sink: EngineSink): Promise<void> {
    const body = JSON.parse(Buffer.from(call.body).toString("utf8")) as CompletionBody;
    if ((body.n ?? 1) > 1) return sink.error(unsupportedParam(TGI, "n", "greater than 1"));
    if (body.logprobs != null) return sink.error(unsupportedParam(TGI, "logprobs", "on completions"));
    if (body.min_p != null) return sink.error(unsupportedParam(TGI, "min_p", ""));
    if (body.presence_penalty != null && body.presence_penalty !== 0) return sink.error(unsupportedParam(TGI, "presence_penalty", ""));
    const prompt = typeof body.prompt === "string" ? body.prompt : body.prompt[0];
    if (typeof prompt !== "string") return sink.error(unsupportedParam(TGI, "prompt", "as token ids"));
    const stops = stopsOf(body.stop);
    const id = `cmpl-${randomBytes(16).toString("hex")}`;
    const created = Math.floor(Date.now() / 1000);
    const chunk = (text: string, finish: string | null) =>
      JSON.stringify({ id, object: "text_completion", created, model: body.model, choices: [{ index: 0, text, logprobs: null, finish_reason: finish }] });
    const parameters = tgiParameters(body, true);
    const grammar = tgiGrammar(body as unknown as Record<string, unknown>);
    if (grammar) parameters.grammar = grammar;
    const request = { inputs: prompt, parameters };

    if (!call.stream) {
      const res = await this.pool.request({
        method: "POST",
        path: "/generate",
        headers: engineHeaders(call),
        body: JSON.stringify(request),
        signal: call.signal,
      });
      const text = await readText(res.body);
      if (res.statusCode !== 200) return sink.error(normalizeEngineError(res.statusCode, text));
      const parsed = JSON.parse(text) as { generated_text: string; details?: TgiDetails };
      const reason = parsed.details?.finish_reason ?? "length";
      const promptTokens = Number(res.headers["x-prompt-tokens"] ?? 0) || 0;
      const completionTokens = parsed.details?.generated_tokens ?? (Number(res.headers["x-generated-tokens"] ?? 0) || 0);
      const generated = reason === "stop_sequence" ? stripStop(parsed.generated_text, stops) : parsed.generated_text;
      sink.body(
        JSON.stringify({
          id,
          object: "text_completion",
          created,
          model: body.model,
          choices: [{ index: 0, text: (body.echo ? prompt : "") + generated, logprobs: null, finish_reason: FINISH[reason] }],
          usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
        }),
      );
      sink.usage({ promptTokens, completionTokens, images: 0 });
      return;
    }

    const res = await this.pool.request({
      method: "POST",
      path: "/generate_stream",
      headers: engineHeaders(call),
      body: JSON.stringify(request),
      signal: call.signal,
    });
    if (res.statusCode !== 200) return sink.error(normalizeEngineError(res.statusCode, await readText(res.body)));
    const holdback = new StopHoldback(stops);
    let details: TgiDetails | undefined;
    let failed = false;
    let tokens = 0;
    let emitted = "";
    if (body.echo) sink.chunk(chunk(prompt, null));
    const parser = new SseParser((data) => {
      if (failed || details) return;
      let frame: TgiFrame;
      try {
        frame = JSON.parse(data) as TgiFrame;
      } catch {
        return;
      }
      if (frame.error !== undefined) {
        failed = true;
        sink.error(normalizeEngineError(500, data));
        return;
      }
      tokens++;
      let text = frame.token && !frame.token.special ? holdback.push(frame.token.text) : "";
      if (frame.details) {
        details = frame.details;
        const stopped = details.finish_reason === "stop_sequence";
        text += holdback.end(stopped);
        // The last frame's generated_text is the whole answer (a stop may end inside a token's text).
        if (typeof frame.generated_text === "string") {
          const whole = stopped ? stripStop(frame.generated_text, stops) : frame.generated_text;
          if (whole.startsWith(emitted)) text = whole.slice(emitted.length);
        }
        sink.chunk(chunk(text, FINISH[details.finish_reason]));
      } else if (text.length > 0) {
        emitted += text;
        sink.chunk(chunk(text, null));
      }
    });
    await readChunks(res.body, (c) => {
      parser.push(c);
      return !failed;
    });
    if (failed) return;
    parser.end();
    if (failed) return;
    // /generate_stream has no [DONE]: the frame with details is the end.
    if (!details) return sink.error(engineGone("the engine closed the stream before it finished"));
    sink.usage({ promptTokens: details.input_length ?? 0, completionTokens: details.generated_tokens || tokens, images: 0 });
  }
}
