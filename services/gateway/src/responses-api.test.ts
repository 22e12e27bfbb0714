/** The Responses → chat translation: what the engine is asked, and the 400s naming the field at fault. */
import { describe, expect, it } from "vitest";
import { PlatformError } from "@infera/core";
import { inputItems, referencedIds, responseFromChat, type ResponsesRequest, toChat } from "./responses-api.ts";

const MODEL = "m";
const chatOf = (body: Partial<ResponsesRequest> & { input: ResponsesRequest["input"] }) => {
  const b = { model: MODEL, ...body } as ResponsesRequest;
  return toChat(b, inputItems(b.input)) as unknown as Record<string, unknown>;
};
const paramOf = (fn: () => unknown): string | null | undefined => {
  try {
    fn();
  } catch (e) {
    if (e instanceof PlatformError) return e.param;
    throw e;
  }
  return undefined;
};

describe("a Responses request as the chat request the engines serve", () => {
  it("a string input with instructions: a system then a user message", () => {
    expect(chatOf({ input: "hi", instructions: "be brief" }).messages).toEqual([
      { role: "system", content: "be brief" },
      { role: "user", content: "hi" },
    ]);
  });

  it("items: parts joined, developer as system, function calls on one assistant message, their outputs as tool messages", () => {
    const chat = chatOf({
      input: [
        { role: "developer", content: "rules" },
        {
          type: "message",
          role: "user",
          content: [
            { type: "input_text", text: "a" },
            { type: "input_text", text: "b" },
          ],
        },
        { role: "assistant", content: [{ type: "output_text", text: "calling" }] },
        { type: "function_call", call_id: "c1", name: "f", arguments: "{}" },
        { type: "function_call", call_id: "c2", name: "g", arguments: '{"x":1}' },
        { type: "function_call_output", call_id: "c1", output: "one" },
        { type: "function_call_output", call_id: "c2", output: [{ type: "input_text", text: "two" }] },
      ],
    });
    expect(chat.messages).toEqual([
      { role: "system", content: "rules" },
      { role: "user", content: "ab" },
      {
        role: "assistant",
        content: "calling",
        tool_calls: [
          { id: "c1", type: "function", function: { name: "f", arguments: "{}" } },
          { id: "c2", type: "function", function: { name: "g", arguments: '{"x":1}' } },
        ],
      },
      { role: "tool", tool_call_id: "c1", content: "one" },
      { role: "tool", tool_call_id: "c2", content: "two" },
    ]);
  });

  it("function tools, tool_choice, text.format and the sampling fields in the chat shape", () => {
    const chat = chatOf({
      input: "x",
      tools: [{ type: "function", name: "f", description: "d", parameters: { type: "object" }, strict: true }],
      tool_choice: { type: "function", name: "f" },
      text: { format: { type: "json_schema", name: "n", schema: { type: "object" }, strict: true } },
      max_output_tokens: 9,
      temperature: 0.5,
      top_p: 0.9,
      parallel_tool_calls: false,
      user: "u",
      stream: true,
    });
    expect(chat).toMatchObject({
      tools: [{ type: "function", function: { name: "f", description: "d", parameters: { type: "object" }, strict: true } }],
      tool_choice: { type: "function", function: { name: "f" } },
      response_format: { type: "json_schema", json_schema: { name: "n", schema: { type: "object" }, strict: true } },
      max_completion_tokens: 9,
      temperature: 0.5,
      top_p: 0.9,
      parallel_tool_calls: false,
      user: "u",
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(chatOf({ input: "x", text: { format: { type: "json_object" } } }).response_format).toEqual({ type: "json_object" });
    expect(chatOf({ input: "x", text: { format: { type: "text" } } })).not.toHaveProperty("response_format");
  });

  it("input items get ids; given ones are kept", () => {
    const items = inputItems([
      { id: "msg_given", role: "user", content: "a" },
      { role: "user", content: "b" },
    ]);
    expect(items[0]!.id).toBe("msg_given");
    expect(items[1]!.id).toMatch(/^msg_[0-9a-f]{48}$/);
    expect(items[1]!.content).toEqual([{ type: "input_text", text: "b" }]);
  });

  it("item references become the stored items they name; reasoning items are kept but not shown to the model", () => {
    const stored = {
      id: "msg_old",
      type: "message",
      role: "assistant",
      status: "completed",
      content: [{ type: "output_text", text: "before", annotations: [], logprobs: [] }],
    };
    const input = [
      { role: "user" as const, content: "a" },
      { type: "reasoning", id: "rs_1", summary: [{ type: "summary_text", text: "thinking" }], encrypted_content: "x" },
      { type: "item_reference", id: "msg_old" },
      { id: "msg_old" },
      { role: "user" as const, content: "b" },
    ];
    expect(referencedIds(input)).toEqual(["msg_old", "msg_old"]);
    const items = inputItems(input, new Map([["msg_old", stored]]));
    expect(items[1]).toEqual({ id: "rs_1", type: "reasoning", summary: [{ type: "summary_text", text: "thinking" }] });
    expect(items[2]).toEqual({ ...stored, content: [{ type: "output_text", text: "before", annotations: [] }] });
    expect(toChat({ model: MODEL, input }, items).messages).toEqual([
      { role: "user", content: "a" },
      { role: "assistant", content: "before" },
      { role: "assistant", content: "before" },
      { role: "user", content: "b" },
    ]);
  });

  it("logprobs: asked for by include or top_logprobs; max_tool_calls and top_logprobs are accepted", () => {
    expect(chatOf({ input: "x", include: ["message.output_text.logprobs"] })).toMatchObject({ logprobs: true });
    expect(chatOf({ input: "x", top_logprobs: 3 })).toMatchObject({ logprobs: true, top_logprobs: 3 });
    expect(chatOf({ input: "x", top_logprobs: 0, max_tool_calls: 2 })).not.toHaveProperty("logprobs");
  });

  it("the Response echoes max_tool_calls, top_logprobs and reasoning as asked; the chat logprobs land on the output_text", () => {
    const body = { model: MODEL, input: "x", max_tool_calls: 2, top_logprobs: 1, reasoning: { effort: "low" } } as ResponsesRequest;
    const lp = { token: "Hi", logprob: -0.1, bytes: [72, 105], top_logprobs: [{ token: "Hi", logprob: -0.1, bytes: [72, 105] }] };
    const chat = { model: MODEL, choices: [{ message: { content: "Hi" }, finish_reason: "stop", logprobs: { content: [lp] } }] };
    const r = responseFromChat({ id: "resp_1", createdAt: 1, body, onFinished: async () => undefined }, chat);
    expect(r).toMatchObject({ max_tool_calls: 2, top_logprobs: 1, reasoning: { effort: "low", summary: null } });
    expect(r.output).toMatchObject([{ content: [{ type: "output_text", text: "Hi", logprobs: [lp] }] }]);
  });

  it("what is not served is a 400 naming the field", () => {
    expect(paramOf(() => chatOf({ input: "x", tools: [{ type: "function", name: "f" }, { type: "file_search" }] }))).toBe("tools[1].type");
    expect(paramOf(() => chatOf({ input: [{ type: "computer_call_output", call_id: "c" }] }))).toBe("input[0].type");
    expect(paramOf(() => chatOf({ input: [{ type: "reasoning", summary: [{ type: "x" }] }] }))).toBe("input[0].summary[0]");
    expect(paramOf(() => chatOf({ input: [{ type: "item_reference", id: "msg_gone" }] }))).toBe("input[0].id");
    expect(paramOf(() => chatOf({ input: [{ role: "robot", content: "x" }] }))).toBe("input[0].role");
    expect(paramOf(() => chatOf({ input: [{ role: "user", content: [{ type: "input_file" }] }] }))).toBe("input[0].content[0].type");
    expect(paramOf(() => chatOf({ input: [{ type: "function_call", call_id: "c", name: "f" }] }))).toBe("input[0].arguments");
    expect(paramOf(() => chatOf({ input: "x", text: { format: { type: "json_schema", schema: {} } } }))).toBe("text.format.name");
    expect(paramOf(() => chatOf({ input: "x", tool_choice: { type: "web_search" } }))).toBe("tool_choice");
    expect(paramOf(() => chatOf({ input: "x", background: true }))).toBe("background");
    expect(paramOf(() => chatOf({ input: "x", conversation: "conv_1" }))).toBe("conversation");
  });
});
