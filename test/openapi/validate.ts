/**
 * Validates response bodies against OpenAI's published response schemas, kept as data in
 * `services/gateway/src/openai-responses.json` (see its `info.description` for where they come
 * from and `x-infera-deviations` for what differs; the gateway's /openapi.json serves the same
 * schemas). One Ajv instance compiles each
 * component once; `expectSchema` fails a test with every violation listed.
 */
import { readFileSync } from "node:fs";
import { Ajv, type ValidateFunction } from "ajv";
import addFormats from "ajv-formats";

export type SchemaName =
  | "CreateChatCompletionResponse"
  | "CreateChatCompletionStreamResponse"
  | "CreateCompletionResponse"
  | "CreateCompletionStreamResponse"
  | "CreateEmbeddingResponse"
  | "CreateEmbeddingResponseBase64"
  | "ImagesResponse"
  | "ListModelsResponse"
  | "Model"
  | "OpenAIFile"
  | "ListFilesResponse"
  | "DeleteFileResponse"
  | "Batch"
  | "ListBatchesResponse"
  | "ErrorResponse";

const spec = JSON.parse(readFileSync(new URL("../../services/gateway/src/openai-responses.json", import.meta.url), "utf8")) as {
  components: { schemas: Record<string, unknown> };
};

const ajv = new Ajv({ allErrors: true, strict: false });
addFormats.default(ajv);
ajv.addSchema({ components: spec.components }, "openai");
const compiled = new Map<SchemaName, ValidateFunction>();

/** The violations of `body` against the named component schema (empty when it conforms). */
export function schemaErrors(name: SchemaName, body: unknown): string[] {
  let validate = compiled.get(name);
  if (!validate) {
    validate = ajv.compile({ $ref: `openai#/components/schemas/${name}` });
    compiled.set(name, validate);
  }
  if (validate(body)) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message ?? ""} ${JSON.stringify(e.params)}`);
}

/** Throws, listing every violation, unless `body` conforms to the named schema. */
export function expectSchema(name: SchemaName, body: unknown): void {
  const errors = schemaErrors(name, body);
  if (errors.length > 0) {
    throw new Error(`response does not match OpenAI's ${name}:\n  ${errors.join("\n  ")}\nbody: ${JSON.stringify(body).slice(0, 1500)}`);
  }
}
