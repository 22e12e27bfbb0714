/**
 * text-embeddings-inference's native API: `POST /embed` (`{inputs, normalize, truncate,
 * dimensions}` → `[[floats]]`; `inputs` a string, strings, or token ids). TEI refuses a
 * batch larger than `--max-client-batch-size` (413), so a larger request is sent in slices.
 * The prompt-token count comes from TEI's `x-compute-tokens` header. The answer is put
 * in OpenAI's shape (float, or base64 of little-endian float32).
 */
import { normalizeEngineError, notServed, unsupportedParam, type EngineCall, type EngineSink } from "./adapter.ts";
import { embeddingInputs, floatsToBase64, type EmbeddingBody } from "./embedding-body.ts";
import { engineHeaders, HttpEngineAdapter, readText } from "./http.ts";

/** TEI's default `--max-client-batch-size`. */
export const TEI_MAX_CLIENT_BATCH = 32;

export class TeiAdapter extends HttpEngineAdapter {
  readonly kind = "tei" as const;

  constructor(
    engineUrl: string,
    private readonly maxClientBatch = TEI_MAX_CLIENT_BATCH,
  ) {
    super(engineUrl);
  }

  async run(call: EngineCall, sink: EngineSink): Promise<void> {
    if (call.endpoint === "rerank" || call.endpoint === "score") return this.rerank(call, sink);
    if (call.endpoint !== "embedding") {
      sink.error(notServed("text-embeddings-inference", call.endpoint));
      return;
    }
    const body = JSON.parse(Buffer.from(call.body).toString("utf8")) as EmbeddingBody;
    const inputs = embeddingInputs(body.input);
    const vectors: number[][] = [];
    let tokens = 0;
    for (let i = 0; i < inputs.length; i += this.maxClientBatch) {
      const slice = inputs.slice(i, i + this.maxClientBatch);
      // vLLM's truncate_prompt_tokens: TEI truncates to the model's length (it has no count of its own).
      const req: Record<string, unknown> = { inputs: slice, normalize: true, truncate: body.truncate_prompt_tokens != null };
      if (body.dimensions !== undefined) req.dimensions = body.dimensions;
      const res = await this.pool.request({ method: "POST", path: "/embed", headers: engineHeaders(call), body: JSON.stringify(req), signal: call.signal });
      const text = await readText(res.body);
      if (res.statusCode !== 200) {
        sink.error(normalizeEngineError(res.statusCode, text));
        return;
      }
      vectors.push(...(JSON.parse(text) as number[][]));
      tokens += Number(res.headers["x-compute-tokens"] ?? 0) || 0;
    }
    const base64 = body.encoding_format === "base64";
    const data = vectors.map((v, index) => ({ object: "embedding", index, embedding: base64 ? floatsToBase64(v) : v }));
    sink.body(JSON.stringify({ object: "list", data, model: body.model, usage: { prompt_tokens: tokens, total_tokens: tokens } }));
    sink.usage({ promptTokens: tokens, completionTokens: 0, images: 0 });
  }

  /**
   * vLLM's /rerank (`{query, documents, top_n, return_documents}`) and /score with one `text_1`
   * (`{text_1, text_2}`) through TEI's `/rerank` (`{query, texts}` → `[{index, score}]`), in
   * slices of at most the client batch size; answered in vLLM's shapes.
   */
  private async rerank(call: EngineCall, sink: EngineSink): Promise<void> {
    const body = JSON.parse(Buffer.from(call.body).toString("utf8")) as {
      model: string;
      query?: string;
      documents?: (string | { text: string })[];
      top_n?: number | null;
      return_documents?: boolean | null;
      text_1?: string | string[];
      text_2?: string | string[];
      truncate_prompt_tokens?: number | null;
    };
    const rerank = call.endpoint === "rerank";
    const query = rerank ? body.query : typeof body.text_1 === "string" ? body.text_1 : body.text_1?.length === 1 ? body.text_1[0] : undefined;
    if (query === undefined) return sink.error(unsupportedParam("text-embeddings-inference", "text_1", "as several texts (send one)"));
    const texts = rerank
      ? (body.documents ?? []).map((d) => (typeof d === "string" ? d : d.text))
      : typeof body.text_2 === "string"
        ? [body.text_2]
        : (body.text_2 ?? []);
    const scores: number[] = new Array(texts.length);
    let tokens = 0;
    for (let i = 0; i < texts.length; i += this.maxClientBatch) {
      const slice = texts.slice(i, i + this.maxClientBatch);
      const req = { query, texts: slice, truncate: body.truncate_prompt_tokens != null };
      const res = await this.pool.request({ method: "POST", path: "/rerank", headers: engineHeaders(call), body: JSON.stringify(req), signal: call.signal });
      const text = await readText(res.body);
      if (res.statusCode !== 200) return sink.error(normalizeEngineError(res.statusCode, text));
      for (const r of JSON.parse(text) as { index: number; score: number }[]) scores[i + r.index] = r.score;
      tokens += Number(res.headers["x-compute-tokens"] ?? 0) || 0;
    }
    const usage = { prompt_tokens: tokens, total_tokens: tokens };
    if (rerank) {
      const results = texts
        .map((text, index) => ({ index, document: body.return_documents === false ? null : { text }, relevance_score: scores[index] ?? 0 }))
        .sort((a, b) => b.relevance_score - a.relevance_score)
        .slice(0, body.top_n ? body.top_n : texts.length);
      sink.body(JSON.stringify({ id: `rerank-${Date.now().toString(36)}`, model: body.model, usage, results }));
    } else {
      const data = texts.map((_, index) => ({ index, object: "score", score: scores[index] ?? 0 }));
      sink.body(
        JSON.stringify({ id: `score-${Date.now().toString(36)}`, object: "list", created: Math.floor(Date.now() / 1000), model: body.model, data, usage }),
      );
    }
    sink.usage({ promptTokens: tokens, completionTokens: 0, images: 0 });
  }
}
