/**
 * Structured outputs: JSON built deterministically from an RNG, for `response_format`
 * (`json_object`, `json_schema`) and tool-call arguments (a function's `parameters` schema).
 * For a schema, required properties (all properties when none are required) get typed
 * placeholder values, so the result validates against simple schemas.
 */
import { type Rng, randInt } from "./random.ts";
import { shortPhrase } from "./text.ts";

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const MAX_DEPTH = 6;

export function valueForSchema(schema: unknown, rng: Rng, depth = 0): JsonValue {
  if (!isRecord(schema) || depth > MAX_DEPTH) return shortPhrase(rng, 3);
  if ("const" in schema) return (schema.const ?? null) as JsonValue;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return (schema.enum[0] ?? null) as JsonValue;
  for (const key of ["anyOf", "oneOf", "allOf"] as const) {
    const options = schema[key];
    if (Array.isArray(options) && options.length > 0) return valueForSchema(options[0], rng, depth + 1);
  }
  let type = schema.type;
  if (Array.isArray(type)) type = type.find((t) => t !== "null") ?? "null";
  if (type === undefined && isRecord(schema.properties)) type = "object";
  switch (type) {
    case "object": {
      const props = isRecord(schema.properties) ? schema.properties : {};
      const required = Array.isArray(schema.required) ? schema.required.filter((k): k is string => typeof k === "string") : Object.keys(props);
      const out: { [key: string]: JsonValue } = {};
      for (const key of required) out[key] = valueForSchema(props[key], rng, depth + 1);
      return out;
    }
    case "array": {
      const min = typeof schema.minItems === "number" ? schema.minItems : 1;
      const count = Math.max(min, 1);
      return Array.from({ length: Math.min(count, 8) }, () => valueForSchema(schema.items, rng, depth + 1));
    }
    case "integer": {
      const lo = typeof schema.minimum === "number" ? Math.ceil(schema.minimum) : 0;
      const hi = typeof schema.maximum === "number" ? Math.floor(schema.maximum) : lo + 100;
      return randInt(rng, lo, Math.max(lo, hi));
    }
    case "number": {
      const lo = typeof schema.minimum === "number" ? schema.minimum : 0;
      const hi = typeof schema.maximum === "number" ? schema.maximum : lo + 1;
      return Math.round((lo + rng() * (hi - lo)) * 100) / 100;
    }
    case "boolean":
      return rng() < 0.5;
    case "null":
      return null;
    default:
      return shortPhrase(rng, 3);
  }
}

/** The object answered for `response_format: {type: "json_object"}`. */
export function jsonObjectValue(rng: Rng): JsonValue {
  return {
    answer: shortPhrase(rng, 8),
    confidence: Math.round(rng() * 100) / 100,
    tags: [shortPhrase(rng, 1), shortPhrase(rng, 1)],
  };
}
