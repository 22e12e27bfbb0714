/**
 * Embeddings: deterministic unit vectors from a hash of the input text, and the OpenAI /
 * vLLM `/v1/embeddings` endpoint (float or base64 of little-endian float32; `dimensions`
 * truncates Matryoshka-style and re-normalises, allowed up to the model's dimension).
 */
import type { SimContext } from "./context.ts";
import { SimError } from "./errors.ts";
import { checkModel } from "./openai-request.ts";
import { createRng, gaussian, hashString, hexId } from "./random.ts";
import { decode, encode } from "./tokenizer.ts";
import { type Body, optInt, optString } from "./validate.ts";

/** A unit vector (L2 norm 1) of `dim` floats for `text`, the same every time. */
export function embeddingVector(text: string, dim: number): Float32Array {
  const rng = createRng(hashString(text, 0x2545f491));
  const v = new Float32Array(dim);
  let norm = 0;
  for (let i = 0; i < dim; i++) {
    const x = gaussian(rng);
    v[i] = x;
    norm += x * x;
  }
  const inv = 1 / Math.sqrt(norm);
  for (let i = 0; i < dim; i++) v[i] = (v[i] as number) * inv;
  return v;
}

/** The first `dims` components, re-normalised to unit length. */
export function truncateVector(v: Float32Array, dims: number): Float32Array {
  if (dims >= v.length) return v;
  const out = v.slice(0, dims);
  let norm = 0;
  for (const x of out) norm += x * x;
  const inv = 1 / Math.sqrt(norm);
  for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) * inv;
  return out;
}

/** Base64 of the vector's little-endian float32 bytes (what OpenAI's encoding_format "base64" carries). */
export function vectorBase64(v: Float32Array): string {
  const buf = Buffer.alloc(v.length * 4);
  for (let i = 0; i < v.length; i++) buf.writeFloatLE(v[i] as number, i * 4);
  return buf.toString("base64");
}

export interface EmbeddingInput {
  text: string;
  tokens: number;
}

/** OpenAI `input`: a string, strings, token ids, or lists of token ids. */
export function parseEmbeddingInputs(input: unknown): EmbeddingInput[] {
  const isIds = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => Number.isInteger(x) && (x as number) >= 0);
  if (typeof input === "string") return [{ text: input, tokens: encode(input, { bos: true }).length }];
  if (Array.isArray(input) && input.length > 0) {
    if (input.every((x): x is string => typeof x === "string")) return input.map((text) => ({ text, tokens: encode(text, { bos: true }).length }));
    if (isIds(input)) return [{ text: decode(input), tokens: input.length }];
    if (input.every(isIds)) return input.map((ids) => ({ text: decode(ids), tokens: ids.length }));
  }
  throw new SimError("invalid_request", "input: Input should be a string, a list of strings, a list of token ids, or a list of lists of token ids", "input");
}

/** The wait before an embeddings batch answers: TTFT plus prefill of all its tokens. */
export function embeddingDelayMs(ctx: SimContext, tokens: number): number {
  return ctx.config.ttftMs + (ctx.config.prefillUsPerToken * tokens) / 1000;
}

export interface EmbeddingsAnswer {
  body: unknown;
  delayMs: number;
}

/** vLLM's POST /v1/embeddings. */
export function openAiEmbeddings(ctx: SimContext, body: Body, flavor: "vllm" | "tei"): EmbeddingsAnswer {
  const model = checkModel(ctx.config, body);
  const inputs = parseEmbeddingInputs(body.input);
  const format = optString(body, "encoding_format") ?? "float";
  if (format !== "float" && format !== "base64") {
    throw new SimError("invalid_request", `encoding_format must be "float" or "base64", got ${JSON.stringify(format)}`, "encoding_format");
  }
  const dim = ctx.config.embeddingDim;
  const dims = optInt(body, "dimensions");
  if (dims !== undefined && (dims < 1 || dims > dim)) {
    throw new SimError("invalid_request", `dimensions must be between 1 and ${dim} for this model, got ${dims}`, "dimensions");
  }
  if (flavor === "tei" && inputs.length > ctx.config.maxClientBatchSize) {
    throw new SimError("too_large", `batch size ${inputs.length} > maximum allowed batch size ${ctx.config.maxClientBatchSize}`);
  }
  let tokens = 0;
  for (const [i, input] of inputs.entries()) {
    if (input.tokens > ctx.config.maxModelLen) {
      throw new SimError(
        "context_length",
        flavor === "tei"
          ? `Input validation error: \`inputs\` must have less than ${ctx.config.maxModelLen} tokens. Given: ${input.tokens}`
          : `This model's maximum context length is ${ctx.config.maxModelLen} tokens. However, you requested ${input.tokens} tokens in the input for embedding generation (input ${i}). Please reduce the length of the input.`,
        "input",
      );
    }
    tokens += input.tokens;
  }
  countEmbeddings(ctx, inputs.length, tokens);
  const data = inputs.map((input, index) => {
    const v = truncateVector(embeddingVector(input.text, dim), dims ?? dim);
    return { index, object: "embedding", embedding: format === "base64" ? vectorBase64(v) : Array.from(v) };
  });
  const id = `embd-${hexId(createRng(Math.floor(ctx.random() * 0x100000000)), 32)}`;
  return {
    body: {
      id,
      object: "list",
      created: Math.floor(Date.now() / 1000),
      model,
      data,
      usage: { prompt_tokens: tokens, total_tokens: tokens, completion_tokens: 0, prompt_tokens_details: null },
    },
    delayMs: embeddingDelayMs(ctx, tokens),
  };
}

export function countEmbeddings(ctx: SimContext, inputs: number, tokens: number): void {
  ctx.counters.embeddingCalls++;
  ctx.counters.embeddingInputs += inputs;
  ctx.counters.embeddingTokens += tokens;
}
