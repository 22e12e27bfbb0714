/**
 * What the gateway refuses in any request before a handler sees it, the same for every
 * route (tenant, admin, deploy):
 * - JSON nested deeper than `MAX_JSON_DEPTH`: found by one scan of the body's text before it
 *   is parsed, so neither the schema validator, nor an error message, nor a serialisation can
 *   recurse without end (10,000 levels used to overflow the stack: a 500, or no answer);
 * - strings holding NUL or an unpaired UTF-16 surrogate, anywhere in a JSON body, a path
 *   parameter or a query value: Postgres refuses NUL in text and JSON (and unpaired
 *   surrogates in jsonb), Redis keys and Kubernetes names are built from such strings, and an
 *   engine's tokenizer cannot encode a lone surrogate. JSON text can only carry them as
 *   `\u` escapes, so the scan notes those and only then are the parsed strings walked;
 * - path parameters and query values longer than `MAX_PARAM_CHARS`.
 * Each is a 400 in OpenAI's error shape that names the limit or the field.
 */
import { PlatformError } from "@infera/core";

export const MAX_JSON_DEPTH = 64;
export const MAX_PARAM_CHARS = 256;

export type ScanResult = "ok" | "too_deep" | "check_strings";

const QUOTE = 34;
const BACKSLASH = 92;
const OPEN_BRACE = 123;
const OPEN_BRACKET = 91;
const CLOSE_BRACE = 125;
const CLOSE_BRACKET = 93;
const U = 117;

function hex4(text: string, i: number): number {
  return Number.parseInt(text.slice(i, i + 4), 16);
}

/** One pass over JSON text: nesting depth, and whether a `\u0000` or surrogate escape occurs. */
export function scanJson(text: string, maxDepth = MAX_JSON_DEPTH): ScanResult {
  let depth = 0;
  let inString = false;
  let suspect = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === QUOTE) inString = false;
      else if (c === BACKSLASH) {
        if (text.charCodeAt(i + 1) === U) {
          const v = hex4(text, i + 2);
          if (v === 0 || (v >= 0xd800 && v <= 0xdfff)) suspect = true;
        }
        i++;
      }
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > maxDepth) return "too_deep";
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
  }
  return suspect ? "check_strings" : "ok";
}

/** NUL, or a surrogate that is not half of a pair. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is what this looks for.
const BAD_TEXT = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

export function isBadText(s: string): boolean {
  return BAD_TEXT.test(s);
}

function pathOf(parts: readonly (string | number)[]): string {
  let out = "";
  for (const p of parts) out += typeof p === "number" ? `[${p}]` : out ? `.${p}` : p;
  return out;
}

/** The path (`messages[0].content`) of the first string — value or key — that is bad text, if any. */
export function findBadString(value: unknown, path: (string | number)[] = []): string | undefined {
  if (typeof value === "string") return isBadText(value) ? pathOf(path) || "body" : undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const hit = findBadString(value[i], [...path, i]);
      if (hit !== undefined) return hit;
    }
    return undefined;
  }
  if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      if (isBadText(k)) return pathOf(path) || "body"; // a bad key: name the object that holds it
      const hit = findBadString(v, [...path, k]);
      if (hit !== undefined) return hit;
    }
  }
  return undefined;
}

export function badTextError(param: string): PlatformError {
  return new PlatformError("invalid_request", `Invalid value for '${param}': text must not contain NUL (\\u0000) or an unpaired surrogate.`, { param });
}

export function tooDeepError(): PlatformError {
  return new PlatformError("invalid_request", `The JSON body is nested more than ${MAX_JSON_DEPTH} levels deep.`);
}

/** Path parameters and query values: bad text or too long is a 400 naming it. */
export function checkParams(values: unknown): void {
  if (values === null || typeof values !== "object") return;
  for (const [k, v] of Object.entries(values as Record<string, unknown>)) {
    for (const s of Array.isArray(v) ? v : [v]) {
      if (typeof s !== "string") continue;
      const param = k === "*" ? "path" : k;
      if (isBadText(s) || isBadText(k)) throw badTextError(param);
      if (s.length > MAX_PARAM_CHARS) {
        throw new PlatformError("invalid_request", `Invalid value for '${param}': longer than ${MAX_PARAM_CHARS} characters.`, { param });
      }
    }
  }
}
