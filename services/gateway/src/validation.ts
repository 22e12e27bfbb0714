/**
 * Turns JSON-schema validation errors into one OpenAI-style 400 that names the
 * attribute at fault (`param`), the way the hosted API does.
 */
import { PlatformError } from "@infera/core";

export interface SchemaError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
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

export function validationError(errors: readonly SchemaError[], body: unknown): PlatformError {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    return new PlatformError("invalid_request", "The request body must be a JSON object.");
  }
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
