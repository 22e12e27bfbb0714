/**
 * The sim's one error type and the one place that turns it into each engine's error JSON:
 * vLLM (OpenAI shape with the integer status in `code`), TGI (`{error, error_type}`), TEI
 * (`{error, error_type}` with TEI's statuses), and the OpenAI-style image server.
 */
import type { EngineKind } from "@infera/contracts/names";
export const SIM_ERROR_KINDS = [
  "invalid_request", // a field missing, mistyped or out of range
  "context_length", // the prompt (plus max tokens) exceeds the model's context
  "too_large", // a batch or payload over the server's limits
  "empty", // TEI: empty input
  "not_found", // an unknown model, or an endpoint this task does not serve
  "rate_limited", // 429
  "overloaded", // the waiting queue is full
  "unavailable", // still starting up
  "server_error", // the engine failed
] as const;

export type SimErrorKind = (typeof SIM_ERROR_KINDS)[number];

export class SimError extends Error {
  readonly kind: SimErrorKind;
  readonly param: string | null;
  constructor(kind: SimErrorKind, message: string, param: string | null = null) {
    super(message);
    this.name = "SimError";
    this.kind = kind;
    this.param = param;
  }
}

/** Whose error shapes to answer with: the engine engine-sim imitates. */
export type Flavor = EngineKind;

export interface ErrorReply {
  status: number;
  body: string;
  headers: Record<string, string>;
}

const OPENAI: Record<SimErrorKind, [number, string]> = {
  invalid_request: [400, "BadRequestError"],
  context_length: [400, "BadRequestError"],
  too_large: [400, "BadRequestError"],
  empty: [400, "BadRequestError"],
  not_found: [404, "NotFoundError"],
  rate_limited: [429, "RateLimitError"],
  overloaded: [503, "ServiceUnavailableError"],
  unavailable: [503, "ServiceUnavailableError"],
  server_error: [500, "InternalServerError"],
};

const TGI: Record<SimErrorKind, [number, string]> = {
  invalid_request: [422, "validation"],
  context_length: [422, "validation"],
  too_large: [413, "validation"],
  empty: [422, "validation"],
  not_found: [404, "not_found"],
  rate_limited: [429, "overloaded"],
  overloaded: [429, "overloaded"],
  unavailable: [503, "healthcheck"],
  server_error: [500, "generation"],
};

const TEI: Record<SimErrorKind, [number, string]> = {
  invalid_request: [422, "tokenizer"],
  context_length: [413, "validation"],
  too_large: [413, "validation"],
  empty: [400, "empty"],
  not_found: [404, "not_found"],
  rate_limited: [429, "overloaded"],
  overloaded: [429, "overloaded"],
  unavailable: [503, "unhealthy"],
  server_error: [500, "backend"],
};

/** TGI's `error_type` for an error kind (also the `err` label of tgi_request_failure). */
export function tgiErrorType(kind: SimErrorKind): string {
  return TGI[kind][1];
}

/** The status and JSON body an engine of `flavor` answers `err` with. */
export function errorReply(flavor: Flavor, err: SimError): ErrorReply {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (err.kind === "rate_limited" || err.kind === "overloaded" || err.kind === "unavailable") headers["retry-after"] = "1";
  if (flavor === "tgi" || flavor === "tei") {
    const [status, errorType] = (flavor === "tgi" ? TGI : TEI)[err.kind];
    return { status, headers, body: JSON.stringify({ error: err.message, error_type: errorType }) };
  }
  const [status, type] = OPENAI[err.kind];
  return { status, headers, body: JSON.stringify({ error: { message: err.message, type, param: err.param, code: status } }) };
}

/** The data frame an engine sends when a stream fails after it started. */
export function streamErrorFrame(flavor: Flavor, message: string): string {
  if (flavor === "tgi" || flavor === "tei") return `data: ${JSON.stringify({ error: message, error_type: "generation" })}\n\n`;
  return `data: ${JSON.stringify({ error: { message, type: "InternalServerError", param: null, code: 500 } })}\n\n`;
}

/** Unexpected exceptions become a server_error with their message. */
export function asSimError(err: unknown): SimError {
  if (err instanceof SimError) return err;
  return new SimError("server_error", err instanceof Error ? err.message : String(err));
}
