import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ChatCompletionRequest, CompletionRequest, EmbeddingRequest } from "./openai-schema.ts";
import { CHAT_FIELDS, COMPLETION_FIELDS, EMBEDDING_FIELDS } from "./request-fields.ts";
import { FIELDS_DOC, renderFieldsDoc } from "./request-fields-doc.ts";

describe("the request-field table", () => {
  it("names exactly the fields each schema accepts", () => {
    for (const [schema, rules] of [
      [ChatCompletionRequest, CHAT_FIELDS],
      [CompletionRequest, COMPLETION_FIELDS],
      [EmbeddingRequest, EMBEDDING_FIELDS],
    ] as const) {
      expect(Object.keys(rules).sort()).toEqual(Object.keys((schema as { properties: object }).properties).sort());
    }
  });

  it("is what docs/openai-request-fields.md shows (regenerate with `pnpm docs:fields`)", () => {
    expect(readFileSync(FIELDS_DOC, "utf8")).toBe(renderFieldsDoc());
  });
});
