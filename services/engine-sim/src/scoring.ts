/**
 * Relevance scores, as pooling models serve them: vLLM's `/rerank` (`/v1/rerank`, `/v2/rerank`;
 * Jina's and Cohere's shape) and `/score` (`/v1/score`), and TEI's `/rerank`. A score is the
 * cosine similarity of the two texts' deterministic embeddings mapped to [0, 1] (as vLLM
 * scores with an embedding model), so it is the same every time; tokens are Llama 3 counts.
 */
import type { SimContext } from "./context.ts";
import { countEmbeddings, embeddingDelayMs, embeddingVector } from "./embeddings.ts";
import { SimError } from "./errors.ts";
import { isRecord } from "./http.ts";
import { checkModel } from "./openai-request.ts";
import { createRng, hexId } from "./random.ts";
import { encode } from "./tokenizer.ts";
import { type Body, optBool, optInt } from "./validate.ts";

export interface ScoreAnswer {
  body: unknown;
  delayMs: number;
  headers?: Record<string, string>;
}

export function relevance(ctx: SimContext, a: string, b: string): number {
  const dim = Math.min(ctx.config.embeddingDim, 256);
  const va = embeddingVector(a, dim);
  const vb = embeddingVector(b, dim);
  let dot = 0;
  for (let i = 0; i < dim; i++) dot += (va[i] as number) * (vb[i] as number);
  return (dot + 1) / 2;
}

const tokensOf = (text: string) => encode(text, { bos: true }).length;

function strings(v: unknown, param: string, allowObjects = false): string[] {
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || list.length === 0) throw new SimError("invalid_request", `${param}: Input should be a string or a non-empty list`, param);
  return list.map((x) => {
    if (typeof x === "string") return x;
    if (allowObjects && isRecord(x) && typeof x.text === "string") return x.text;
    throw new SimError("invalid_request", `${param}: every item should be a string${allowObjects ? " or {text}" : ""}`, param);
  });
}

function pairTokens(ctx: SimContext, query: string, doc: string, index: number, param: string): number {
  const n = tokensOf(query) + tokensOf(doc);
  if (n > ctx.config.maxModelLen) {
    throw new SimError(
      "context_length",
      `This model's maximum context length is ${ctx.config.maxModelLen} tokens. However, you requested ${n} tokens in the input for scoring (pair ${index}).`,
      param,
    );
  }
  return n;
}

/** vLLM's POST /rerank: `{model, query, documents, top_n?, return_documents?}` → `{id, model, usage, results}`. */
export function vllmRerank(ctx: SimContext, body: Body): ScoreAnswer {
  const model = checkModel(ctx.config, body);
  if (typeof body.query !== "string") throw new SimError("invalid_request", "query: Field required (a string)", "query");
  const query = body.query;
  const docs = strings(body.documents, "documents", true);
  const topN = optInt(body, "top_n", 0) ?? docs.length;
  const returnDocuments = optBool(body, "return_documents") ?? true;
  let tokens = 0;
  const results = docs.map((text, index) => {
    tokens += pairTokens(ctx, query, text, index, "documents");
    return { index, document: returnDocuments ? { text } : null, relevance_score: relevance(ctx, query, text) };
  });
  results.sort((a, b) => b.relevance_score - a.relevance_score);
  countEmbeddings(ctx, docs.length, tokens);
  return {
    body: {
      id: `rerank-${hexId(createRng(Math.floor(ctx.random() * 0x100000000)), 32)}`,
      model,
      usage: { total_tokens: tokens },
      results: results.slice(0, topN > 0 ? topN : docs.length),
    },
    delayMs: embeddingDelayMs(ctx, tokens),
  };
}

/** vLLM's POST /score: `{model, text_1, text_2}` (1:1, 1:N or N:N) → `{id, object, created, model, data, usage}`. */
export function vllmScore(ctx: SimContext, body: Body): ScoreAnswer {
  const model = checkModel(ctx.config, body);
  const a = strings(body.text_1, "text_1");
  const b = strings(body.text_2, "text_2");
  if (a.length !== 1 && a.length !== b.length) {
    throw new SimError("invalid_request", "text_1 must be one text, or as many texts as text_2", "text_1");
  }
  let tokens = 0;
  const data = b.map((t2, index) => {
    const t1 = a.length === 1 ? (a[0] as string) : (a[index] as string);
    tokens += pairTokens(ctx, t1, t2, index, "text_2");
    return { index, object: "score", score: relevance(ctx, t1, t2) };
  });
  countEmbeddings(ctx, b.length, tokens);
  return {
    body: {
      id: `score-${hexId(createRng(Math.floor(ctx.random() * 0x100000000)), 32)}`,
      object: "list",
      created: Math.floor(Date.now() / 1000),
      model,
      data,
      usage: { prompt_tokens: tokens, total_tokens: tokens, completion_tokens: 0, prompt_tokens_details: null },
    },
    delayMs: embeddingDelayMs(ctx, tokens),
  };
}

/** TEI's POST /rerank: `{query, texts, return_text?, raw_scores?, truncate?}` → `[{index, score, text?}]`, tokens in `x-compute-tokens`. */
export function teiRerank(ctx: SimContext, body: Body): ScoreAnswer {
  if (typeof body.query !== "string") throw new SimError("invalid_request", "Failed to deserialize the JSON body into the target type: missing field `query`");
  const query = body.query;
  const texts = strings(body.texts, "texts");
  if (texts.length > ctx.config.maxClientBatchSize) {
    throw new SimError("too_large", `batch size ${texts.length} > maximum allowed batch size ${ctx.config.maxClientBatchSize}`);
  }
  const returnText = optBool(body, "return_text") ?? false;
  let tokens = 0;
  const out = texts.map((text, index) => {
    tokens += pairTokens(ctx, query, text, index, "texts");
    return { index, score: relevance(ctx, query, text), ...(returnText ? { text } : {}) };
  });
  out.sort((x, y) => y.score - x.score);
  countEmbeddings(ctx, texts.length, tokens);
  return { body: out, delayMs: embeddingDelayMs(ctx, tokens), headers: { "x-compute-tokens": String(tokens), "x-compute-type": "gpu+optimized" } };
}
