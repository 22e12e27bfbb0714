import Fastify from "fastify";
import { afterAll, describe, expect, it } from "vitest";
import { ChatCompletionRequest } from "./openai-schema.ts";
import { validationError, type SchemaError } from "./validation.ts";

// Fastify's Ajv with the gateway's options, and its error handler's use of validationError.
const app = Fastify({ ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: true, useDefaults: false } } });
app.post("/chat", { schema: { body: ChatCompletionRequest } }, async () => ({ ok: true }));
app.setErrorHandler((err, req, reply) => {
  const e = validationError((err as { validation: SchemaError[] }).validation, req.body);
  reply.code(400).send({ message: e.message, param: e.param });
});
afterAll(() => app.close());

async function errorFor(body: Record<string, unknown>): Promise<{ message: string; param: string }> {
  const r = await app.inject({ method: "POST", url: "/chat", payload: body });
  expect(r.statusCode).toBe(400);
  return r.json();
}

const base = { model: "m", messages: [{ role: "user", content: "hi" }] };

describe("validation errors name the field the client got wrong", () => {
  it("the union member whose `type` matches is the one reported", async () => {
    expect(await errorFor({ ...base, tools: [{ type: "function" }] })).toEqual({
      param: "tools[0].function",
      message: "Missing required parameter: 'tools[0].function'.",
    });
    expect((await errorFor({ ...base, messages: [{ role: "user", content: [{ type: "image_url", image_url: {} }] }] })).param).toBe(
      "messages[0].content[0].image_url.url",
    );
    expect((await errorFor({ ...base, tool_choice: { type: "allowed_tools", allowed_tools: { mode: "sometimes", tools: [] } } })).param).toBe(
      "tool_choice.allowed_tools.mode",
    );
  });

  it("an unknown field is refused by name; a bad value names its path", async () => {
    expect((await errorFor({ ...base, nope: 1 })).message).toBe("Unrecognized request argument supplied: nope");
    expect((await errorFor({ ...base, metadata: { k: 1 } })).param).toBe("metadata.k");
  });
});
