/**
 * HTTP plumbing every engine adapter shares: a keep-alive pool to the engine, reading a
 * body, and the health and load probes (`/health`, Prometheus `/metrics`).
 */
import { finished, Readable } from "node:stream";
import { Pool } from "undici";
import type { EngineAdapter, EngineCall, EngineKind, EngineLoad, EngineSink } from "./adapter.ts";
import { parseEngineLoad } from "./load.ts";

/** A keep-alive connection pool to the engine; one per agent. */
export function enginePool(engineUrl: string, connections = 512): Pool {
  return new Pool(engineUrl, {
    connections,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    headersTimeout: 0, // engines may queue a request for long before the first byte
    bodyTimeout: 0, // a stream may pause between tokens; cancellation is explicit
  });
}

export async function readText(body: AsyncIterable<Uint8Array>): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(Buffer.from(c));
  return Buffer.concat(parts).toString("utf8");
}

/**
 * Hands each read of an engine's streamed body to `onChunk` until it returns false (then the
 * body is destroyed, as leaving a `for await` would) or the body ends; rejects as `for await`
 * would (an error, a premature close). A Node stream is read by its `data` events: the async
 * iterator costs a promise and a microtask per read, and a streamed answer is one read per token.
 */
export function readChunks(body: AsyncIterable<Uint8Array>, onChunk: (chunk: Uint8Array) => boolean): Promise<void> {
  if (!(body instanceof Readable)) return iterate(body, onChunk);
  return new Promise((resolve, reject) => {
    let over = false;
    const onData = (c: Uint8Array): void => {
      if (over || onChunk(c)) return;
      over = true;
      body.off("data", onData);
      body.destroy();
      resolve();
    };
    body.on("data", onData);
    finished(body, (err) => {
      if (over) return;
      over = true;
      if (err) reject(err);
      else resolve();
    });
  });
}

async function iterate(body: AsyncIterable<Uint8Array>, onChunk: (chunk: Uint8Array) => boolean): Promise<void> {
  for await (const c of body) if (!onChunk(c)) return;
}

export const JSON_HEADERS = { "content-type": "application/json" };

/** The engine request's headers: JSON, the request's correlation id as X-Request-Id (engines log by it) and its W3C traceparent. */
export function engineHeaders(call: { correlationId?: string; traceparent?: string }): Record<string, string> {
  if (!call.correlationId && !call.traceparent) return JSON_HEADERS;
  const h: Record<string, string> = { "content-type": "application/json" };
  if (call.correlationId) h["x-request-id"] = call.correlationId;
  if (call.traceparent) h.traceparent = call.traceparent;
  return h;
}

/** An engine reached over HTTP: the pool, health and load; subclasses say how to run a call. */
export abstract class HttpEngineAdapter implements EngineAdapter {
  abstract readonly kind: EngineKind;
  protected readonly pool: Pool;

  constructor(engineUrl: string) {
    this.pool = enginePool(engineUrl);
  }

  abstract run(call: EngineCall, sink: EngineSink): Promise<void>;

  async health(): Promise<boolean> {
    try {
      const res = await this.pool.request({ method: "GET", path: "/health", headersTimeout: 2000, bodyTimeout: 2000 });
      await res.body.dump();
      return res.statusCode === 200;
    } catch {
      return false;
    }
  }

  async load(): Promise<EngineLoad | undefined> {
    try {
      const res = await this.pool.request({ method: "GET", path: "/metrics", headersTimeout: 2000, bodyTimeout: 2000 });
      if (res.statusCode !== 200) {
        await res.body.dump();
        return undefined;
      }
      return parseEngineLoad(await readText(res.body));
    } catch {
      return undefined;
    }
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}
