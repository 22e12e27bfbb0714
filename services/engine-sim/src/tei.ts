/**
 * text-embeddings-inference's API: POST /embed (`{inputs, normalize, truncate}` →
 * `[[floats]]`), /v1/embeddings (OpenAI shape), GET /info. Errors use TEI's statuses:
 * 413 validation (too many tokens, batch too large), 422 tokenizer, 400 empty, 429 overloaded.
 */
import type { SimContext } from "./context.ts";
import { countEmbeddings, embeddingDelayMs, embeddingVector, truncateVector } from "./embeddings.ts";
import { SimError } from "./errors.ts";
import { decode, encode } from "./tokenizer.ts";
import { type Body, optBool, optInt } from "./validate.ts";

export interface TeiEmbedAnswer {
  body: number[][];
  delayMs: number;
  /** TEI's response headers: `x-compute-tokens` (prompt tokens), `x-compute-characters`, `x-compute-type`. */
  headers: Record<string, string>;
}

export function teiEmbed(ctx: SimContext, body: Body): TeiEmbedAnswer {
  const raw = body.inputs;
  // TEI's `inputs`: a string, strings, token ids, or lists of token ids (decoded here to seed the vector).
  const isIds = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((x) => Number.isInteger(x) && (x as number) >= 0);
  let texts: string[];
  let idCounts: number[] | undefined;
  if (typeof raw === "string") texts = [raw];
  else if (Array.isArray(raw) && raw.every((x): x is string => typeof x === "string")) texts = raw;
  else if (isIds(raw)) [texts, idCounts] = [[decode(raw)], [raw.length]];
  else if (Array.isArray(raw) && raw.length > 0 && raw.every(isIds)) [texts, idCounts] = [raw.map((ids) => decode(ids)), raw.map((ids) => ids.length)];
  else
    throw new SimError(
      "invalid_request",
      "Failed to deserialize the JSON body into the target type: inputs: data did not match any variant of untagged enum Input",
    );
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
  const vectors = texts.map((text, i) => {
    let n = idCounts?.[i] ?? encode(text, { bos: true }).length;
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
  const characters = texts.reduce((c, t) => c + t.length, 0);
  return {
    body: vectors,
    delayMs: embeddingDelayMs(ctx, tokens),
    headers: { "x-compute-type": "gpu+optimized", "x-compute-tokens": String(tokens), "x-compute-characters": String(characters) },
  };
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
