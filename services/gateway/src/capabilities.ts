/**
 * Which request attributes each engine can serve. The gateway knows the deployment's
 * engine (from the registry), so a request asking for something the engine cannot do is
 * a 400 that names the attribute, before it reaches the queue, never silently dropped.
 * Also the cross-field rules JSON Schema cannot express (top_logprobs needs logprobs,
 * stream_options needs stream).
 */
import { PlatformError } from "@infera/core";
import type { EngineKind } from "@infera/contracts";
import type { ChatCompletionRequest, CompletionRequest } from "./openai-schema.ts";

/** TGI's router defaults: `--max-stop-sequences 4`, `--max-top-n-tokens 5`. */
const TGI_MAX_STOP = 4;
const TGI_MAX_TOP_N = 5;

const ENGINE_NAME: Record<EngineKind, string> = {
  vllm: "vLLM",
  tgi: "text-generation-inference",
  tei: "text-embeddings-inference",
  image: "the image server",
};

function unsupported(engine: EngineKind, param: string, what: string): PlatformError {
  return new PlatformError("invalid_request", `'${param}'${what ? ` ${what}` : ""} is not supported by this model (served by ${ENGINE_NAME[engine]}).`, {
    param,
  });
}

const set = (v: unknown): boolean => v !== undefined && v !== null;

function stopCount(stop: string | string[] | null | undefined): number {
  if (stop == null) return 0;
  return typeof stop === "string" ? 1 : stop.length;
}

/** Rules every engine shares. */
function common(body: { stream?: boolean | null; stream_options?: unknown }): void {
  if (set(body.stream_options) && body.stream !== true) {
    throw new PlatformError("invalid_request", "The 'stream_options' parameter is only allowed when 'stream' is enabled.", { param: "stream_options" });
  }
}

export function checkChat(engine: EngineKind, body: ChatCompletionRequest): void {
  common(body);
  if (set(body.top_logprobs) && body.logprobs !== true) {
    throw new PlatformError("invalid_request", "'top_logprobs' requires 'logprobs' to be true.", { param: "top_logprobs" });
  }
  if (engine !== "tgi") return;
  // TGI's Messages API: no n, no top_k/min_p/repetition_penalty, no logit_bias, ≤ 4 stops, ≤ 5 top logprobs.
  if ((body.n ?? 1) > 1) throw unsupported(engine, "n", "greater than 1");
  if (set(body.top_k)) throw unsupported(engine, "top_k", "on chat completions");
  if (set(body.min_p)) throw unsupported(engine, "min_p", "on chat completions");
  if (set(body.repetition_penalty)) throw unsupported(engine, "repetition_penalty", "on chat completions");
  if (set(body.logit_bias)) throw unsupported(engine, "logit_bias", "");
  if (stopCount(body.stop) > TGI_MAX_STOP) throw unsupported(engine, "stop", `with more than ${TGI_MAX_STOP} sequences`);
  if ((body.top_logprobs ?? 0) > TGI_MAX_TOP_N) throw unsupported(engine, "top_logprobs", `greater than ${TGI_MAX_TOP_N}`);
  if (body.seed != null && body.seed < 0) throw unsupported(engine, "seed", "below 0");
}

export function checkCompletion(engine: EngineKind, body: CompletionRequest): void {
  common(body);
  if (engine !== "tgi") return;
  // TGI's /generate_stream: one sequence, no per-token logprobs in OpenAI's shape, no presence penalty.
  if ((body.n ?? 1) > 1) throw unsupported(engine, "n", "greater than 1");
  if ((body.best_of ?? 1) > 1) throw unsupported(engine, "best_of", "greater than 1");
  if (set(body.logprobs)) throw unsupported(engine, "logprobs", "on completions");
  if (body.presence_penalty != null && body.presence_penalty !== 0) throw unsupported(engine, "presence_penalty", "");
  if (set(body.min_p)) throw unsupported(engine, "min_p", "");
  if (set(body.logit_bias)) throw unsupported(engine, "logit_bias", "");
  if (set(body.suffix)) throw unsupported(engine, "suffix", "");
  if (typeof body.prompt !== "string" && typeof body.prompt[0] !== "string") throw unsupported(engine, "prompt", "as token ids");
  if (stopCount(body.stop) > TGI_MAX_STOP) throw unsupported(engine, "stop", `with more than ${TGI_MAX_STOP} sequences`);
  if (body.seed != null && body.seed < 0) throw unsupported(engine, "seed", "below 0");
}
