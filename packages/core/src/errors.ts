/**
 * The one error type every process throws across a boundary. `code` is a closed
 * union; the gateway maps it to HTTP status and OpenAI error JSON in one place
 * (services/gateway/src/errors.ts), gRPC servers map it in theirs.
 */
export const ERROR_CODES = [
  "invalid_request", // 400: a field is missing, mistyped or out of range
  "invalid_api_key", // 401
  "permission_denied", // 403: the key lacks a scope
  "not_found", // 404: model, deployment, route
  "conflict", // 409/422: an illegal state transition
  "payload_too_large", // 413
  "uri_too_long", // 414: a path parameter past the router's limit
  "rate_limited", // 429
  "queue_full", // 429: the deployment's queue is at its bound
  "insufficient_quota", // 429: the key's monthly budget is spent (OpenAI's code)
  "unavailable", // 503: nothing can serve it now (stopped, still deploying, queue wait exceeded)
  "engine_error", // an engine answered with an error
  "timeout", // 504
  "internal", // 500
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface PlatformErrorOptions {
  param?: string | null;
  retryable?: boolean;
  /** Seconds a client should wait before retrying (429/503). */
  retryAfterS?: number;
  /** The HTTP status an engine answered with, when code is engine_error. */
  status?: number;
  cause?: unknown;
}

export class PlatformError extends Error {
  readonly code: ErrorCode;
  readonly param: string | null;
  readonly retryable: boolean;
  readonly retryAfterS: number | undefined;
  readonly status: number | undefined;

  constructor(code: ErrorCode, message: string, options: PlatformErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.name = "PlatformError";
    this.code = code;
    this.param = options.param ?? null;
    this.retryable = options.retryable ?? (code === "unavailable" || code === "rate_limited" || code === "queue_full");
    this.retryAfterS = options.retryAfterS;
    this.status = options.status;
  }
}

export function isPlatformError(err: unknown): err is PlatformError {
  return err instanceof PlatformError;
}
