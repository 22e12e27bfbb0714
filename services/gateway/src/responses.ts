/** The gateway's whole (non-streamed) answers to an inference request: the engine's JSON with usage, or OpenAI's error JSON. */
import type { ServerResponse } from "node:http";
import type { EndpointKind } from "@infera/contracts";
import type { PlatformError } from "@infera/core";
import { errorBody, httpStatusOf } from "./errors.ts";
import type { GatewayMetrics } from "./metrics.ts";
import { conformChatBody, IMAGE_USAGE, type UsageOut } from "./relay.ts";

export interface WholeAnswer {
  endpoint: EndpointKind;
  /** The engine's JSON answer (undefined: it sent none). */
  json: string | undefined;
  usage: UsageOut;
  headers: Record<string, string>;
}

/** The engine's answer with `usage` in OpenAI's shape for its endpoint (and `estimated_cost`). */
export function sendBody(res: ServerResponse, a: WholeAnswer): void {
  const parsed = a.json ? (JSON.parse(a.json) as Record<string, unknown>) : {};
  const { usage } = a;
  if (a.endpoint === "image") {
    // Images: OpenAI's usage counts tokens the diffusion server does not report; cost rides along like the provider's.
    parsed.usage = { ...IMAGE_USAGE, estimated_cost: usage.estimated_cost };
  } else if (a.endpoint === "rerank") {
    // Jina's / Cohere's usage shape, with the cost beside it.
    parsed.usage = { total_tokens: usage.prompt_tokens, estimated_cost: usage.estimated_cost };
  } else if (a.endpoint === "score") {
    parsed.usage = { prompt_tokens: usage.prompt_tokens, total_tokens: usage.prompt_tokens, completion_tokens: 0, estimated_cost: usage.estimated_cost };
  } else if (a.endpoint === "tokenize" || a.endpoint === "detokenize") {
    // The engine's answer as it is: nothing was generated.
  } else if (a.endpoint === "embedding") {
    parsed.usage = { prompt_tokens: usage.prompt_tokens, total_tokens: usage.prompt_tokens, estimated_cost: usage.estimated_cost };
  } else {
    if (a.endpoint === "chat") conformChatBody(parsed);
    parsed.usage = usage;
  }
  const out = JSON.stringify(parsed);
  res.writeHead(200, { ...a.headers, "content-type": "application/json", "content-length": Buffer.byteLength(out) });
  res.end(out);
}

/** OpenAI's error JSON with the error's status (and `retry-after`), unless an answer has begun. */
export function sendError(res: ServerResponse, err: PlatformError, headers: Record<string, string>, metrics: GatewayMetrics): void {
  if (res.headersSent) return;
  metrics.errors.inc({ code: err.code });
  const out = JSON.stringify(errorBody(err));
  const h: Record<string, string | number> = { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(out) };
  if (err.retryAfterS !== undefined) h["retry-after"] = String(err.retryAfterS);
  res.writeHead(httpStatusOf(err), h);
  res.end(out);
}
