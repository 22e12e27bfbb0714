/**
 * text-embeddings-inference's API: POST /embed (`{inputs, normalize, truncate}` →
 * `[[floats]]`), /v1/embeddings (OpenAI shape), GET /info. Errors use TEI's statuses:
 * 413 validation (too many tokens, batch too large), 422 tokenizer, 400 empty, 429 overloaded.
 */
import type { SimContext } from "./context.ts";
import { countEmbeddings, embeddingDelayMs, embeddingVector, truncateVector } from "./embeddings.ts";
import { SimError } from "./errors.ts";
import { encode } from "./tokenizer.ts";
import { type Body, optBool, optInt } from "./validate.ts";

export interface TeiEmbedAnswer {
  body: number[][];
  delayMs: number;
}

export function teiEmbed(ctx: SimContext, body: Body): TeiEmbedAnswer {
  const raw = body.inputs;
  let texts: string[];
  if (typeof raw === "string") texts = [raw];
  else if (Array.isArray(raw) && raw.every((x): x is string => typeof x === "string")) texts = raw;
  else throw new SimError("invalid_request", "Failed to deserialize the JSON body into the target type: inputs: expected a string or a list of strings");
  if (texts.length === 0) throw new SimError("empty", "`inputs` cannot be empty");
  if (texts.length > ctx.config.maxClientBatchSize) {
    throw new SimError("too_large", `batch size ${texts.length} > maximum allowed batch size ${ctx.config.maxClientBatchSize}`);
  }
  const normalize = optBool(body, "normalize") ?? true;
  const truncate = optBool(body, "truncate") ?? false;
  const dim = ctx.config.embeddingDim;
  const dims = optInt(body, "dimensions", 1, dim) ?? dim;
  const max = ctx.config.maxModelLen;
  let tokens = 0;
  const vectors = texts.map((text) => {
    let n = encode(text, { bos: true }).length;
    if (n > max) {
      if (!truncate) throw new SimError("context_length", `Input validation error: \`inputs\` must have less than ${max} tokens. Given: ${n}`);
      n = max;
    }
    tokens += n;
    const v = truncateVector(embeddingVector(text, dim), dims);
    const out = Array.from(v);
    if (normalize) return out;
    // An unnormalised embedding: the same direction, with a text-dependent length.
    const scale = 5 + (text.length % 11);
    return out.map((x) => x * scale);
  });
  countEmbeddings(ctx, texts.length, tokens);
  return { body: vectors, delayMs: embeddingDelayMs(ctx, tokens) };
}

export function teiInfo(ctx: SimContext): unknown {
  return {
    model_id: ctx.config.models[0],
    model_sha: null,
    model_dtype: "float16",
    model_type: { embedding: { pooling: "cls" } },
    max_concurrent_requests: ctx.config.maxNumSeqs + ctx.config.maxWaiting,
    max_input_length: ctx.config.maxModelLen,
    max_batch_tokens: 16384,
    max_batch_requests: null,
    max_client_batch_size: ctx.config.maxClientBatchSize,
    auto_truncate: false,
    tokenization_workers: 4,
    version: "1.8.0",
    sha: null,
    docker_label: null,
  };
}
