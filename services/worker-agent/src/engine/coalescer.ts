/**
 * Coalesces concurrent embedding requests into one engine call. Requests that arrive
 * while a call is being prepared (same model, same kind of input, same dimensions) are
 * joined, up to `maxBatch` inputs; the answer is split back per request. The engine's
 * prompt-token total is shared out by each request's share of the input text, with
 * the remainder assigned so the shares add up to exactly the engine's count.
 */
import type { AgentMetrics } from "../metrics.ts";
import type { EngineAdapter, EngineSink, NormalizedError } from "./adapter.ts";

interface EmbeddingBody {
  model: string;
  input: string | string[] | number[] | number[][];
  encoding_format?: "float" | "base64";
  dimensions?: number;
  user?: string;
}

interface Pending {
  inputs: (string | number[])[];
  weight: number;
  base64: boolean;
  signal: AbortSignal;
  sink: EngineSink;
  done: () => void;
}

const encoder = new TextEncoder();

function normalizeInputs(input: EmbeddingBody["input"]): (string | number[])[] {
  if (typeof input === "string") return [input];
  if (input.length > 0 && typeof input[0] === "number") return [input as number[]];
  return input as (string | number[])[];
}

export function floatsToBase64(v: readonly number[]): string {
  const f = new Float32Array(v);
  return Buffer.from(f.buffer, f.byteOffset, f.byteLength).toString("base64");
}

export class EmbeddingCoalescer {
  private readonly groups = new Map<string, Pending[]>();
  private scheduled = false;

  constructor(private readonly o: { adapter: EngineAdapter; maxBatch: number; metrics?: AgentMetrics }) {}

  run(rawBody: Uint8Array, signal: AbortSignal, sink: EngineSink): Promise<void> {
    const body = JSON.parse(Buffer.from(rawBody).toString("utf8")) as EmbeddingBody;
    const inputs = normalizeInputs(body.input);
    const tokens = inputs.length > 0 && typeof inputs[0] !== "string";
    const key = `${body.model}\u0000${body.dimensions ?? ""}\u0000${tokens ? "t" : "s"}`;
    return new Promise<void>((done) => {
      const weight = inputs.reduce<number>((n, x) => n + (typeof x === "string" ? x.length : x.length) + 1, 0);
      const list = this.groups.get(key) ?? [];
      list.push({ inputs, weight, base64: body.encoding_format === "base64", signal, sink, done });
      this.groups.set(key, list);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush(body));
      }
    });
  }

  private flush(template: EmbeddingBody): void {
    this.scheduled = false;
    const groups = [...this.groups.entries()];
    this.groups.clear();
    for (const [key, pending] of groups) {
      const [model, dims] = key.split("\u0000");
      let batch: Pending[] = [];
      let count = 0;
      for (const p of pending) {
        if (count + p.inputs.length > this.o.maxBatch && batch.length > 0) {
          void this.call(model ?? template.model, dims ? Number(dims) : undefined, batch);
          batch = [];
          count = 0;
        }
        batch.push(p);
        count += p.inputs.length;
      }
      if (batch.length) void this.call(model ?? template.model, dims ? Number(dims) : undefined, batch);
    }
  }

  private async call(model: string, dimensions: number | undefined, batch: Pending[]): Promise<void> {
    const live = batch.filter((p) => !p.signal.aborted);
    for (const p of batch) if (p.signal.aborted) p.done();
    if (live.length === 0) return;
    this.o.metrics?.embeddingBatchSize.observe(live.length);
    const input = live.flatMap((p) => p.inputs);
    const body: Record<string, unknown> = { model, input, encoding_format: "float" };
    if (dimensions !== undefined) body.dimensions = dimensions;
    let result: string | undefined;
    let usage = { promptTokens: 0 };
    let failure: NormalizedError | undefined;
    const controller = new AbortController();
    try {
      await this.o.adapter.run(
        { endpoint: "embedding", body: encoder.encode(JSON.stringify(body)), stream: false, signal: controller.signal },
        {
          chunk: () => {},
          body: (json) => (result = json),
          usage: (u) => (usage = u),
          error: (e) => (failure = e),
        },
      );
    } catch (err) {
      failure = { status: 502, message: `engine unreachable: ${(err as Error).message}`, type: "server_error", param: "", code: "engine_error" };
    }
    if (failure || result === undefined) {
      const e = failure ?? { status: 502, message: "engine returned nothing", type: "server_error", param: "", code: "engine_error" };
      for (const p of live) {
        p.sink.error(e);
        p.done();
      }
      return;
    }
    const parsed = JSON.parse(result) as { data: { index: number; embedding: number[] }[]; model: string };
    const byIndex = parsed.data.slice().sort((a, b) => a.index - b.index);
    const shares = shareOut(usage.promptTokens, live.map((p) => p.weight));
    let offset = 0;
    live.forEach((p, i) => {
      const data = p.inputs.map((_, j) => {
        const v = byIndex[offset + j]?.embedding ?? [];
        return { object: "embedding", index: j, embedding: p.base64 ? floatsToBase64(v) : v };
      });
      offset += p.inputs.length;
      const promptTokens = shares[i] ?? 0;
      if (!p.signal.aborted) {
        p.sink.body(JSON.stringify({ object: "list", data, model: parsed.model, usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } }));
        p.sink.usage({ promptTokens, completionTokens: 0, images: 0 });
      }
      p.done();
    });
  }
}

/** Splits `total` in proportion to `weights`, as integers that add up to `total` exactly. */
export function shareOut(total: number, weights: readonly number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0) || 1;
  const raw = weights.map((w) => (total * w) / sum);
  const out = raw.map(Math.floor);
  let rest = total - out.reduce((a, b) => a + b, 0);
  const order = raw.map((r, i) => [r - Math.floor(r), i] as const).sort((a, b) => b[0] - a[0]);
  for (const [, i] of order) {
    if (rest <= 0) break;
    out[i]!++;
    rest--;
  }
  return out;
}
