/**
 * text-generation-inference's native API: POST /generate and /generate_stream (frames
 * `data: {"index","token":{id,text,logprob,special},"generated_text","details"}`, the last
 * one carrying the full text and details, and no `[DONE]`), GET /info, POST /tokenize.
 * TGI keeps a matched stop sequence in the generated text.
 */
import type { SimContext } from "./context.ts";
import type { JobTiming } from "./engine.ts";
import { SimError } from "./errors.ts";
import type { GenerationRun } from "./generation.ts";
import { tokenLogprobs } from "./logprobs.ts";
import { planChoice } from "./plan.ts";
import { hashString, mix } from "./random.ts";
import { encode, isSpecial, tokenText } from "./tokenizer.ts";
import { type Body, optBool, optInt, optNumber, optRecord, stopList } from "./validate.ts";

const TGI_VERSION = "3.3.6";

export interface TgiRequest {
  inputs: string;
  inputIds: readonly number[];
  maxNewTokens: number;
  stop: string[];
  seed: number;
  sampling: boolean;
  details: boolean;
  decoderInputDetails: boolean;
  returnFullText: boolean;
}

const invalid = (message: string): SimError => new SimError("invalid_request", message);

export function parseTgiRequest(ctx: SimContext, body: Body): TgiRequest {
  const inputs = body.inputs;
  if (typeof inputs !== "string") throw invalid("Failed to deserialize the JSON body into the target type: missing field `inputs`");
  if (inputs.length === 0) throw invalid("Input validation error: `inputs` cannot be empty");
  const params = optRecord(body, "parameters") ?? {};
  const temperature = optNumber(params, "temperature");
  if (temperature !== undefined && temperature <= 0) throw invalid("Input validation error: `temperature` must be strictly positive");
  const topP = optNumber(params, "top_p");
  if (topP !== undefined && (topP <= 0 || topP >= 1)) throw invalid("Input validation error: `top_p` must be > 0.0 and < 1.0");
  const topK = optInt(params, "top_k");
  if (topK !== undefined && topK <= 0) throw invalid("Input validation error: `top_k` must be strictly positive");
  const rep = optNumber(params, "repetition_penalty");
  if (rep !== undefined && rep <= 0) throw invalid("Input validation error: `repetition_penalty` must be strictly positive");
  optNumber(params, "frequency_penalty", -2, 2);
  const maxNew = optInt(params, "max_new_tokens");
  if (maxNew !== undefined && maxNew <= 0) throw invalid("Input validation error: `max_new_tokens` must be strictly positive");
  let stop: string[];
  try {
    stop = stopList(params, "stop", 4);
  } catch {
    throw invalid("Input validation error: `stop` supports up to 4 stop sequences.");
  }
  const seed = optInt(params, "seed", 0);
  const doSample = optBool(params, "do_sample") ?? false;
  const sampling = doSample || temperature !== undefined || topP !== undefined || topK !== undefined;
  const inputIds = encode(inputs, { bos: true });
  const maxTotal = ctx.config.maxModelLen;
  const maxInput = maxTotal - 1;
  if (inputIds.length > maxInput) {
    throw new SimError("context_length", `Input validation error: \`inputs\` must have less than ${maxInput} tokens. Given: ${inputIds.length}`);
  }
  if (maxNew !== undefined && inputIds.length + maxNew > maxTotal) {
    throw new SimError(
      "context_length",
      `Input validation error: \`inputs\` tokens + \`max_new_tokens\` must be <= ${maxTotal}. Given: ${inputIds.length} \`inputs\` tokens and ${maxNew} \`max_new_tokens\``,
    );
  }
  return {
    inputs,
    inputIds,
    maxNewTokens: maxNew ?? maxTotal - inputIds.length,
    stop,
    seed: sampling ? (seed ?? 0) : 0,
    sampling,
    details: optBool(params, "details") ?? false,
    decoderInputDetails: optBool(params, "decoder_input_details") ?? false,
    returnFullText: optBool(params, "return_full_text") ?? false,
  };
}

interface TgiToken {
  id: number;
  text: string;
  logprob: number;
  special: boolean;
}

export function tgiRun(req: TgiRequest, streaming: boolean): GenerationRun {
  const plan = planChoice({
    promptKey: req.inputs,
    seed: req.seed,
    greedy: !req.sampling,
    choiceIndex: 0,
    maxTokens: req.maxNewTokens,
    stop: req.stop,
    includeStopInOutput: true,
  });
  const lps = tokenLogprobs(mix(hashString(req.inputs), req.seed, 0, 77), plan.tokens, 0);
  const tokens: TgiToken[] = plan.tokens.map((id, s) => ({ id, text: tokenText(id), logprob: lps[s]?.logprob ?? 0, special: isSpecial(id) }));
  const finishReason = plan.finishReason === "length" ? "length" : plan.endedWithEos ? "eos_token" : "stop_sequence";
  const generatedText = (req.returnFullText ? req.inputs : "") + plan.text;
  const seed = req.sampling ? req.seed : null;
  const n = tokens.length;

  const frames = (from: number, to: number): string => {
    let out = "";
    for (let s = from; s < to; s++) {
      const last = s === n - 1;
      out += `data: ${JSON.stringify({
        index: s + 1,
        token: tokens[s],
        top_tokens: null,
        generated_text: last ? generatedText : null,
        details: last ? { finish_reason: finishReason, generated_tokens: n, seed, input_length: req.inputIds.length } : null,
      })}\n\n`;
    }
    return out;
  };

  const body = (timing: JobTiming): { text: string; headers: Record<string, string> } => {
    const result: Record<string, unknown> = { generated_text: generatedText };
    if (req.details) {
      const prefillLps = tokenLogprobs(mix(hashString(req.inputs), 5), req.inputIds, 0);
      result.details = {
        finish_reason: finishReason,
        generated_tokens: n,
        seed,
        prefill: req.decoderInputDetails
          ? req.inputIds.map((id, k) => ({ id, text: tokenText(id), logprob: k === 0 ? null : (prefillLps[k]?.logprob ?? 0) }))
          : [],
        tokens,
        top_tokens: [],
        best_of_sequences: null,
      };
    }
    const ms = (x: number): string => String(Math.round(x));
    return {
      text: JSON.stringify(result),
      headers: {
        "x-compute-type": "gpu+optimized",
        "x-compute-time": (timing.inferenceMs / 1000).toFixed(6),
        "x-compute-characters": String(req.inputs.length),
        "x-total-time": ms(timing.queueMs + timing.inferenceMs),
        "x-validation-time": "0",
        "x-queue-time": ms(timing.queueMs),
        "x-inference-time": ms(timing.inferenceMs),
        "x-time-per-token": ms(n > 0 ? timing.inferenceMs / n : 0),
        "x-prompt-tokens": String(req.inputIds.length),
        "x-generated-tokens": String(n),
      },
    };
  };

  return {
    promptTokenIds: req.inputIds,
    lengths: [n],
    finishReasons: [plan.finishReason],
    stream: streaming ? { done: false, frames, end: () => "" } : null,
    body: streaming ? null : { body },
  };
}

export function tgiInfo(ctx: SimContext): unknown {
  return {
    model_id: ctx.config.models[0],
    model_sha: null,
    model_pipeline_tag: "text-generation",
    max_concurrent_requests: ctx.config.maxNumSeqs + ctx.config.maxWaiting,
    max_best_of: 2,
    max_stop_sequences: 4,
    max_input_tokens: ctx.config.maxModelLen - 1,
    max_total_tokens: ctx.config.maxModelLen,
    validation_workers: 2,
    max_client_batch_size: 4,
    router: "text-generation-router",
    version: TGI_VERSION,
    sha: null,
    docker_label: null,
  };
}

/** TGI's POST /tokenize: `[{id, text, start, stop}]` with character offsets. */
export function tgiTokenize(body: Body): unknown {
  const inputs = body.inputs;
  if (typeof inputs !== "string") throw invalid("Failed to deserialize the JSON body into the target type: missing field `inputs`");
  const addedBos = !inputs.startsWith("<|begin_of_text|>");
  let at = 0;
  return encode(inputs, { bos: true }).map((id, k) => {
    const text = tokenText(id);
    // The BOS the tokenizer adds covers no characters of the input.
    const width = k === 0 && addedBos ? 0 : text.length;
    const token = { id, text, start: at, stop: at + width };
    at += width;
    return token;
  });
}
