/**
 * Writes an agent's events to the client as OpenAI's SSE. Chunks pass through as the
 * engine wrote them; only the chunk that carries `finish_reason` is held back until
 * the usage arrives, so it can carry `usage` (the hosted provider's convention); with
 * `stream_options.include_usage`, OpenAI's usage-only chunk (`choices: []`) follows;
 * then `data: [DONE]`. An error after the first byte is one `data: {"error": …}` event.
 */
import type { ServerResponse } from "node:http";

export interface UsageOut {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  estimated_cost: number;
}

const DONE = Buffer.from("data: [DONE]\n\n");

export class SseRelay {
  private started = false;
  private held: string | undefined;
  private first: string | undefined;
  private lastAt = 0;
  chunks = 0;

  constructor(
    private readonly res: ServerResponse,
    private readonly headers: Record<string, string>,
    private readonly includeUsage: boolean,
    private readonly onToken: (gapMs: number | undefined) => void,
  ) {}

  get hasStarted(): boolean {
    return this.started;
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    this.res.writeHead(200, { ...this.headers, "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no" });
  }

  chunk(json: string): void {
    this.start();
    const now = performance.now();
    this.onToken(this.lastAt ? now - this.lastAt : undefined);
    this.lastAt = now;
    this.chunks++;
    if (this.first === undefined) this.first = json;
    if (json.includes('"finish_reason":"') || (json.includes('"finish_reason"') && !json.includes('"finish_reason":null'))) {
      if (this.held !== undefined) this.write(this.held);
      this.held = json;
      return;
    }
    this.write(json);
  }

  usage(u: UsageOut): void {
    this.start();
    if (this.held !== undefined) {
      const c = JSON.parse(this.held) as Record<string, unknown>;
      c.usage = u;
      this.write(JSON.stringify(c));
      this.held = undefined;
    }
    if (this.includeUsage) {
      const meta = this.first ? (JSON.parse(this.first) as Record<string, unknown>) : {};
      this.write(JSON.stringify({ id: meta.id, object: meta.object, created: meta.created, model: meta.model, choices: [], usage: u }));
    }
    this.res.end(DONE);
  }

  /** An error after the stream started: one error event, then the stream ends. */
  error(body: unknown): void {
    this.start();
    if (this.held !== undefined) this.write(this.held);
    this.held = undefined;
    this.res.end(`data: ${JSON.stringify(body)}\n\n`);
  }

  private write(json: string): void {
    this.res.write(`data: ${json}\n\n`);
  }
}
