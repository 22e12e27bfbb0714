/**
 * text-embeddings-inference's native API: `POST /embed` (`{inputs, normalize, truncate,
 * dimensions}` → `[[floats]]`; `inputs` a string, strings, or token ids). TEI refuses a
 * batch larger than `--max-client-batch-size` (413), so a larger request is sent in slices.
 * The prompt-token count comes from TEI's `x-compute-tokens` header. The answer is put
 * in OpenAI's shape (float, or base64 of little-endian float32).
 */
import { normalizeEngineError, notServed, type EngineCall, type EngineSink } from "./adapter.ts";
import { embeddingInputs, floatsToBase64, type EmbeddingBody } from "./embedding-body.ts";
import { HttpEngineAdapter, JSON_HEADERS, readText } from "./http.ts";

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
      const res = await this.pool.request({ method: "POST", path: "/embed", headers: JSON_HEADERS, body: JSON.stringify(req), signal: call.signal });
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
}
