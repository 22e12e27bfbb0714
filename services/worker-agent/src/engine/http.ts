import { Pool } from "undici";

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
