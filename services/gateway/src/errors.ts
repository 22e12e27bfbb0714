/**
 * The one place platform errors become HTTP: status code, OpenAI's error JSON
 * `{"error": {"message", "type", "param", "code"}}`, and Retry-After.
 */
import { PlatformError, type ErrorCode } from "@infera/core";

const STATUS: Record<ErrorCode, number> = {
  invalid_request: 400,
  invalid_api_key: 401,
  permission_denied: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  uri_too_long: 414,
  rate_limited: 429,
  queue_full: 429,
  insufficient_quota: 429,
  unavailable: 503,
  engine_error: 502,
  timeout: 504,
  internal: 500,
};

const TYPE: Record<ErrorCode, string> = {
  invalid_request: "invalid_request_error",
  invalid_api_key: "invalid_request_error",
  permission_denied: "invalid_request_error",
  not_found: "invalid_request_error",
  conflict: "invalid_request_error",
  payload_too_large: "invalid_request_error",
  uri_too_long: "invalid_request_error",
  rate_limited: "rate_limit_error",
  queue_full: "rate_limit_error",
  insufficient_quota: "insufficient_quota",
  unavailable: "server_error",
  engine_error: "server_error",
  timeout: "server_error",
  internal: "server_error",
};

/** OpenAI's `code` strings where it has one (`not_found` is `model_not_found` only when the model is what was not found). */
const CODE: Partial<Record<ErrorCode, string>> = {
  invalid_api_key: "invalid_api_key",
  rate_limited: "rate_limit_exceeded",
  queue_full: "queue_full",
  insufficient_quota: "insufficient_quota",
  unavailable: "service_unavailable",
  payload_too_large: "request_too_large",
};

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export function httpStatusOf(err: PlatformError): number {
  if (err.code === "engine_error" && err.status && err.status >= 400 && err.status < 600) return err.status;
  return STATUS[err.code];
}

export function errorBody(err: PlatformError, codeOverride?: string): OpenAIErrorBody {
  return {
    error: {
      message: err.message,
      type:
        err.code === "engine_error" && err.status && err.status < 500 ? (err.status === 429 ? "rate_limit_error" : "invalid_request_error") : TYPE[err.code],
      param: err.param,
      code: codeOverride ?? codeOf(err),
    },
  };
}

const MODEL_PARAMS = new Set(["model", "model_name"]);

function codeOf(err: PlatformError): string | null {
  if (err.code === "not_found") return err.param !== null && MODEL_PARAMS.has(err.param) ? "model_not_found" : "not_found";
  return CODE[err.code] ?? (err.code === "engine_error" ? null : err.code);
}

/**
 * Postgres refused a value (SQLSTATE class 22, data exception: bad encoding, NUL, too long,
 * out of range): the input's fault, whatever the edge let through — a 400, never "retry".
 */
export function refusedByPostgres(err: unknown): boolean {
  const e = err as { code?: unknown; severity?: unknown } | null;
  return typeof e?.code === "string" && /^22[0-9A-Z]{3}$/.test(e.code) && e.severity !== undefined;
}

export function inputRefused(cause: unknown, param?: string): PlatformError {
  return new PlatformError("invalid_request", "A value in the request cannot be stored or looked up (invalid text or out of range).", { cause, param });
}

/** Anything thrown in a handler, as a PlatformError (unknown errors are 500s with no details leaked). */
export function toPlatformError(err: unknown): PlatformError {
  if (err instanceof PlatformError) return err;
  const e = err as { statusCode?: number; code?: string; message?: string; validation?: unknown };
  if (e?.code === "FST_ERR_CTP_BODY_TOO_LARGE" || e?.statusCode === 413) {
    return new PlatformError("payload_too_large", "The request body is larger than this server accepts.");
  }
  if (e?.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE" || e?.statusCode === 415) {
    return new PlatformError("invalid_request", "Content-Type must be application/json.");
  }
  if (e?.code === "FST_ERR_CTP_EMPTY_JSON_BODY") return new PlatformError("invalid_request", "The request body is empty; send a JSON object.");
  if (refusedByPostgres(err)) return inputRefused(err);
  if (e?.statusCode === 400 && typeof e.message === "string") {
    return new PlatformError("invalid_request", `We could not parse the JSON body of your request. (${e.message})`);
  }
  return new PlatformError("internal", "The server had an error while processing your request.", { cause: err });
}
