/**
 * Turns JSON-schema validation errors into one OpenAI-style 400 that names the
 * attribute at fault (`param`), the way the hosted API does.
 */
import { Ajv } from "ajv";
import { PlatformError } from "@infera/core";

export interface SchemaError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
  schemaPath?: string;
}

/** `/messages/0/role` → `messages[0].role` */
export function paramOf(instancePath: string, extra?: string): string {
  const parts = instancePath.split("/").slice(1);
  if (extra) parts.push(extra);
  let out = "";
  for (const p of parts) out += /^\d+$/.test(p) ? `[${p}]` : out ? `.${p}` : p;
  return out;
}

function valueAt(body: unknown, instancePath: string): unknown {
  let v: unknown = body;
  for (const p of instancePath.split("/").slice(1)) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<string, unknown>)[p];
  }
  return v;
}

const ROLES = ["system", "developer", "user", "assistant", "tool"];

/**
 * A union branch whose discriminant (`type`, `role`) is another literal is not the one the
 * client meant: its errors say nothing (an "unrecognized" property of another part type, say);
 * the branch whose discriminant matched has the error that does. When no branch matched,
 * every error stays (an unknown role or type is then what is reported).
 */
function inMatchedBranches(errors: readonly SchemaError[]): readonly SchemaError[] {
  const wrong = errors
    .filter((e) => e.keyword === "const" && /\/(type|role)$/.test(e.instancePath) && e.schemaPath)
    .map((e) => e.schemaPath!.replace(/\/properties\/(type|role)\/const$/, "/"));
  if (wrong.length === 0) return errors;
  const kept = errors.filter((e) => !e.schemaPath || !wrong.some((b) => e.schemaPath!.startsWith(b)));
  return kept.some((e) => e.keyword !== "anyOf") ? kept : errors;
}

export function validationError(all: readonly SchemaError[], body: unknown): PlatformError {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    return new PlatformError("invalid_request", "The request body must be a JSON object.");
  }
  const errors = inMatchedBranches(all);
  // Unknown attributes first: they are the clearest message.
  const unknown = errors.find((e) => e.keyword === "additionalProperties");
  if (unknown) {
    const name = String(unknown.params.additionalProperty);
    const param = paramOf(unknown.instancePath, name);
    return new PlatformError("invalid_request", `Unrecognized request argument supplied: ${param}`, { param });
  }
  // A role no branch accepts.
  const role = errors.find((e) => e.instancePath.endsWith("/role"));
  if (role) {
    const value = valueAt(body, role.instancePath);
    return new PlatformError("invalid_request", `Invalid value: ${JSON.stringify(value)}. Supported values are: ${ROLES.map((r) => `'${r}'`).join(", ")}.`, {
      param: paramOf(role.instancePath),
    });
  }
  // Otherwise the deepest error: it is the most specific one.
  const deepest = [...errors].sort((a, b) => b.instancePath.split("/").length - a.instancePath.split("/").length)[0];
  if (!deepest) return new PlatformError("invalid_request", "The request body is invalid.");
  if (deepest.keyword === "required") {
    const param = paramOf(deepest.instancePath, String(deepest.params.missingProperty));
    return new PlatformError("invalid_request", `Missing required parameter: '${param}'.`, { param });
  }
  const param = paramOf(deepest.instancePath);
  const value = valueAt(body, deepest.instancePath);
  const shown = JSON.stringify(value);
  return new PlatformError(
    "invalid_request",
    `Invalid value for '${param}': ${shown === undefined ? "" : `${shown.length > 80 ? `${shown.slice(0, 80)}…` : shown} `}${deepest.message ?? "is invalid"}.`,
    { param },
  );
}

// Query strings are strings: a route whose query has numbers (`limit`) validates with this, which coerces them.
const coercing = new Ajv({ coerceTypes: true, allErrors: true, useDefaults: false, removeAdditional: false, strict: false });
export const queryValidator = ({ schema }: { schema: object }) => coercing.compile(schema);
