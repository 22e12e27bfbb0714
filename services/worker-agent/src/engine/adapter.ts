/**
 * An engine adapter turns one platform request into the engine's HTTP call and the
 * engine's answer into OpenAI-shaped events. vLLM is the primary engine; TGI, TEI and
 * image servers have adapters of their own behind the same interface.
 */
import type { EndpointKind, EngineKind } from "@infera/contracts";

export type { EndpointKind, EngineKind };

export interface EngineUsage {
  promptTokens: number;
  completionTokens: number;
  images: number;
}

export interface NormalizedError {
  status: number;
  message: string;
  type: string;
  param: string;
  code: string;
}

/** Where an adapter writes what the engine produced. Exactly one of usage/error ends a call. */
export interface EngineSink {
  /** One OpenAI-shaped stream chunk (JSON text, or its UTF-8 bytes as the engine wrote them: passed on as they are). */
  chunk(json: string | Uint8Array): void;
  /** The whole OpenAI-shaped response (JSON text), non-streaming. */
  body(json: string): void;
  usage(usage: EngineUsage): void;
  error(err: NormalizedError): void;
}

export interface EngineCall {
  endpoint: EndpointKind;
  /** The validated OpenAI request body, `model` already the served name. */
  body: Uint8Array;
  stream: boolean;
  signal: AbortSignal;
  /** Sent to the engine as X-Request-Id (the client's id namespaced by tenant, or the platform's). */
  correlationId?: string;
  /** Sent to the engine as `traceparent` (W3C): vLLM and TGI continue the trace. */
  traceparent?: string;
  /**
   * Stop generating, then end with the usage of what the engine generated (the client left;
   * the gateway asked by `Cancel`). `signal`, by contrast, drops the call with no answer.
   */
  stop?: AbortSignal;
}

export interface EngineLoad {
  running: number;
  waiting: number;
  kvCacheUsage: number;
}

export interface EngineAdapter {
  readonly kind: EngineKind;
  run(call: EngineCall, sink: EngineSink): Promise<void>;
  health(): Promise<boolean>;
  load(): Promise<EngineLoad | undefined>;
  close(): Promise<void>;
}

/**
 * Engines disagree on error shapes: vLLM puts the integer status in `code`
 * (`{"error":{"message","type","param","code":400}}` or the older flat
 * `{"object":"error",…}`), TGI sends `{"error":"…","error_type":"…"}`. Normalise to
 * OpenAI's (string code or the type).
 */
export function normalizeEngineError(status: number, raw: string): NormalizedError {
  let message = raw.slice(0, 2000) || `engine answered ${status}`;
  let type = status >= 500 ? "server_error" : "invalid_request_error";
  let param = "";
  let code = "";
  try {
    const j = JSON.parse(raw) as Record<string, unknown>;
    const e = (typeof j.error === "object" && j.error !== null ? j.error : j) as Record<string, unknown>;
    if (typeof e.message === "string") message = e.message;
    else if (typeof j.error === "string") message = j.error;
    if (typeof e.param === "string") param = e.param;
    if (typeof e.code === "string") code = e.code;
    if (typeof j.error_type === "string") code = j.error_type;
  } catch {
    // not JSON: keep the text
  }
  if (status === 429) type = "rate_limit_error";
  if (status === 404) type = "invalid_request_error";
  if (!code) code = status === 429 ? "engine_overloaded" : status >= 500 ? "engine_error" : "invalid_request";
  return { status, message, type, param, code };
}

export function engineGone(message: string): NormalizedError {
  return { status: 502, message, type: "server_error", param: "", code: "engine_error" };
}

/** A request for an endpoint this engine does not serve (a routing mistake: the model's task is checked upstream). */
export function notServed(engine: string, endpoint: EndpointKind): NormalizedError {
  return { status: 404, message: `${engine} does not serve ${endpoint} requests`, type: "invalid_request_error", param: "model", code: "model_not_found" };
}

/** An attribute the engine cannot honour: a 400 naming it, never a silent drop. */
export function unsupportedParam(engine: string, param: string, what: string): NormalizedError {
  return {
    status: 400,
    message: `'${param}'${what ? ` ${what}` : ""} is not supported by ${engine}`,
    type: "invalid_request_error",
    param,
    code: "unsupported_parameter",
  };
}
