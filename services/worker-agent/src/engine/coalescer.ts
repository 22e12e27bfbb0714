/**
 * Coalesces concurrent embedding requests into one engine call. Requests for the same
 * model, kind of input (text or token ids) and `dimensions` that arrive in the same tick,
 * or while `maxInflight` engine calls are already running, are joined, up to `maxBatch`
 * inputs; the answer is split back per request. The engine is always asked for floats:
 * each request gets its own `encoding_format`. The engine's prompt-token total is shared
 * out by each request's share of the input, with the remainder assigned so the shares add
 * up to exactly the engine's count. A batch the engine refuses as a client error is
 * retried one request at a time, so one bad input fails only its own request.
 */
import { ENGINE_UNREACHABLE } from "@infera/contracts";
import type { AgentMetrics } from "../metrics.ts";
import type { EngineAdapter, EngineSink, NormalizedError } from "./adapter.ts";
import { embeddingInputs, floatsToBase64, type EmbeddingBody } from "./embedding-body.ts";

interface Pending {
  inputs: (string | number[])[];
  weight: number;
  base64: boolean;
  signal: AbortSignal;
  sink: EngineSink;
  done: () => void;
}

interface Group {
  model: string;
  dimensions: number | undefined;
  /** vLLM's pooling options (`truncate_prompt_tokens`, `add_special_tokens`): only requests that agree share a call. */
  options: Record<string, unknown>;
  waiting: Pending[];
}

export interface CoalescerOptions {
  adapter: EngineAdapter;
  /** Most inputs in one engine call. */
  maxBatch: number;
  /** Most engine calls at once; requests beyond wait and join the next call. */
  maxInflight?: number;
  metrics?: AgentMetrics;
}

const encoder = new TextEncoder();

type Outcome = { ok: true; data: number[][]; model: string; promptTokens: number } | { ok: false; error: NormalizedError };

export class EmbeddingCoalescer {
  private readonly groups = new Map<string, Group>();
  private scheduled = false;
  private inflight = 0;
  private readonly maxInflight: number;

  constructor(private readonly o: CoalescerOptions) {
    this.maxInflight = o.maxInflight ?? 4;
  }

  run(rawBody: Uint8Array, signal: AbortSignal, sink: EngineSink): Promise<void> {
    const body = JSON.parse(Buffer.from(rawBody).toString("utf8")) as EmbeddingBody;
    const inputs = embeddingInputs(body.input);
    const tokens = inputs.length > 0 && typeof inputs[0] !== "string";
    const options: Record<string, unknown> = {};
    if (body.truncate_prompt_tokens != null) options.truncate_prompt_tokens = body.truncate_prompt_tokens;
    if (body.add_special_tokens != null) options.add_special_tokens = body.add_special_tokens;
    const key = `${body.model}\u0000${body.dimensions ?? ""}\u0000${tokens ? "t" : "s"}\u0000${options.truncate_prompt_tokens ?? ""}\u0000${options.add_special_tokens ?? ""}`;
    return new Promise<void>((done) => {
      const weight = inputs.reduce<number>((n, x) => n + x.length + 1, 0);
      let group = this.groups.get(key);
      if (!group) {
        group = { model: body.model, dimensions: body.dimensions, options, waiting: [] };
        this.groups.set(key, group);
      }
      group.waiting.push({ inputs, weight, base64: body.encoding_format === "base64", signal, sink, done });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    for (const [key, group] of this.groups) {
      while (group.waiting.length > 0 && this.inflight < this.maxInflight) {
        const batch: Pending[] = [];
        let count = 0;
        while (group.waiting.length > 0) {
          const next = group.waiting[0]!;
          if (batch.length > 0 && count + next.inputs.length > this.o.maxBatch) break;
          batch.push(group.waiting.shift()!);
          count += next.inputs.length;
        }
        this.inflight++;
        void this.serve(group, batch).finally(() => {
          this.inflight--;
          this.schedule();
        });
      }
      if (group.waiting.length === 0) this.groups.delete(key);
    }
  }

  private async serve(group: Group, batch: Pending[]): Promise<void> {
    const live = batch.filter((p) => !p.signal.aborted);
    for (const p of batch) if (p.signal.aborted) p.done();
    if (live.length === 0) return;
    this.o.metrics?.embeddingBatchSize.observe(live.length);
    const outcome = await this.call(group, live);
    if (!outcome.ok && live.length > 1 && outcome.error.status >= 400 && outcome.error.status < 500 && outcome.error.status !== 429) {
      // One request's input may have spoiled the batch: answer each on its own.
      await Promise.all(live.map(async (p) => this.answer([p], await this.call(group, [p]))));
      return;
    }
    this.answer(live, outcome);
  }

  private async call(group: Group, live: Pending[]): Promise<Outcome> {
    const body: Record<string, unknown> = { model: group.model, input: live.flatMap((p) => p.inputs), encoding_format: "float", ...group.options };
    if (group.dimensions !== undefined) body.dimensions = group.dimensions;
    let result: string | undefined;
    let promptTokens = 0;
    let failure: NormalizedError | undefined;
    const controller = new AbortController();
    try {
      await this.o.adapter.run(
        { endpoint: "embedding", body: encoder.encode(JSON.stringify(body)), stream: false, signal: controller.signal },
        {
          chunk: () => {},
          body: (json) => (result = json),
          usage: (u) => (promptTokens = u.promptTokens),
          error: (e) => (failure = e),
        },
      );
    } catch (err) {
      failure = { status: 502, message: `engine unreachable: ${(err as Error).message}`, type: "server_error", param: "", code: ENGINE_UNREACHABLE };
    }
    if (failure || result === undefined) {
      return { ok: false, error: failure ?? { status: 502, message: "engine returned nothing", type: "server_error", param: "", code: "engine_error" } };
    }
    const parsed = JSON.parse(result) as { data: { index: number; embedding: number[] }[]; model: string };
    const data = parsed.data
      .slice()
      .sort((a, b) => a.index - b.index)
      .map((d) => d.embedding);
    return { ok: true, data, model: parsed.model, promptTokens };
  }

  private answer(live: Pending[], outcome: Outcome): void {
    if (!outcome.ok) {
      for (const p of live) {
        if (!p.signal.aborted) p.sink.error(outcome.error);
        p.done();
      }
      return;
    }
    const shares = shareOut(
      outcome.promptTokens,
      live.map((p) => p.weight),
    );
    let offset = 0;
    live.forEach((p, i) => {
      const data = p.inputs.map((_, j) => {
        const v = outcome.data[offset + j] ?? [];
        return { object: "embedding", index: j, embedding: p.base64 ? floatsToBase64(v) : v };
      });
      offset += p.inputs.length;
      const promptTokens = shares[i] ?? 0;
      if (!p.signal.aborted) {
        p.sink.body(JSON.stringify({ object: "list", data, model: outcome.model, usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } }));
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
