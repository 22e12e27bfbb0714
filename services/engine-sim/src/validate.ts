/**
 * Readers for request fields that answer like vLLM's pydantic validation: a wrong type or an
 * out-of-range value throws SimError("invalid_request") naming the field. Unknown fields are
 * ignored, as vLLM does (it logs a warning and drops them).
 */
import { SimError } from "./errors.ts";
import { isRecord } from "./http.ts";

export type Body = Record<string, unknown>;

export function asBody(value: unknown): Body {
  if (!isRecord(value)) throw new SimError("invalid_request", "The request body must be a JSON object");
  return value;
}

const bad = (param: string, message: string): SimError => new SimError("invalid_request", message, param);

export function optNumber(body: Body, name: string, min = -Infinity, max = Infinity): number | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v)) throw bad(name, `${name}: Input should be a valid number, got ${JSON.stringify(v)}`);
  if (v < min || v > max) {
    const range = max === Infinity ? `at least ${min}` : min === -Infinity ? `at most ${max}` : `in [${min}, ${max}]`;
    throw bad(name, `${name} must be ${range}, got ${v}.`);
  }
  return v;
}

export function optInt(body: Body, name: string, min = -Infinity, max = Infinity): number | undefined {
  const v = optNumber(body, name, min, max);
  if (v !== undefined && !Number.isInteger(v)) throw bad(name, `${name}: Input should be a valid integer, got ${v}`);
  return v;
}

export function optBool(body: Body, name: string): boolean | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "boolean") throw bad(name, `${name}: Input should be a valid boolean, got ${JSON.stringify(v)}`);
  return v;
}

export function optString(body: Body, name: string): string | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw bad(name, `${name}: Input should be a valid string`);
  return v;
}

/** `stop`: a string, an array of strings, or null. */
export function stopList(body: Body, name = "stop", maxCount = Infinity): string[] {
  const v = body[name];
  if (v === undefined || v === null) return [];
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || !list.every((s): s is string => typeof s === "string")) {
    throw bad(name, `${name}: Input should be a valid string or a list of strings`);
  }
  if (list.length > maxCount) throw bad(name, `${name} must have at most ${maxCount} sequences, got ${list.length}`);
  return list;
}

export function optRecord(body: Body, name: string): Body | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (!isRecord(v)) throw bad(name, `${name}: Input should be a valid dictionary`);
  return v;
}
