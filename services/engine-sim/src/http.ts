/** Small node:http helpers: reading a JSON body with a size limit, and writing replies. */
import type { IncomingMessage, ServerResponse } from "node:http";
import { SimError } from "./errors.ts";

/** Reads the body; rejects with SimError("too_large") past `limitBytes`. */
export function readBody(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on("data", (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limitBytes) {
        failed = true;
        reject(new SimError("too_large", `Payload too large: the body exceeds ${limitBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (!failed) resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks));
    });
    req.on("error", (err) => {
      if (!failed) reject(err);
    });
  });
}

export function parseJsonBody(body: Buffer): unknown {
  if (body.length === 0) throw new SimError("invalid_request", "Request body is empty; expected a JSON object");
  try {
    return JSON.parse(body.toString("utf8")) as unknown;
  } catch (err) {
    throw new SimError("invalid_request", `JSON decode error: ${(err as Error).message}`);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendText(res, status, JSON.stringify(body), { "content-type": "application/json", ...headers });
}

export function sendText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function startSse(res: ServerResponse, headers: Record<string, string> = {}): void {
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    connection: "keep-alive",
    ...headers,
  });
  res.flushHeaders();
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Writes one piece of a chunked (SSE) response. The hot path of a streaming benchmark: it
 * frames the HTTP/1.1 chunk itself and writes it to the socket in one call, which costs about
 * half of `res.write` (that corks, and writes header, data and CRLF as three buffers).
 * `res.end()` still writes the terminating chunk, in order, on the same socket.
 */
export function writeChunk(res: ServerResponse, text: string): void {
  const socket = res.socket;
  // outputSize > 0: Node still buffers this response (e.g. a pipelined request ahead of it owns the socket).
  const buffered = (res as unknown as { outputSize?: number }).outputSize ?? 1;
  if (res.chunkedEncoding && res.headersSent && buffered === 0 && socket !== null && !socket.destroyed) {
    socket.write(`${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`);
  } else {
    res.write(text);
  }
}
