import { describe, expect, it } from "vitest";
import { PlatformError } from "@infera/core";
import { BatchInputChecker, type BatchInputLimits } from "./batch-input.ts";

const LIMITS: BatchInputLimits = { maxBytes: 1_000_000, maxLines: 100, maxLineBytes: 10_000 };
const chat = (id: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    custom_id: id,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: "m/chat", messages: [{ role: "user", content: `hi ${id}` }], ...extra },
  });

/** The file fed in chunks of `size` bytes (a fault must not depend on where chunks split). */
function check(text: string, limits: Partial<BatchInputLimits> = {}, size = 7) {
  const c = new BatchInputChecker({ ...LIMITS, ...limits });
  const bytes = Buffer.from(text);
  for (let i = 0; i < bytes.length; i += size) c.push(bytes.subarray(i, i + size));
  return c.end();
}

function refusal(text: string, limits: Partial<BatchInputLimits> = {}): string {
  try {
    check(text, limits);
  } catch (err) {
    expect(err).toBeInstanceOf(PlatformError);
    expect((err as PlatformError).code).toBe("invalid_request");
    expect((err as PlatformError).param).toBe("file");
    return (err as Error).message;
  }
  throw new Error("the file was accepted");
}

describe("batch input files", () => {
  it("accepts OpenAI's JSONL in any chunking, CRLF and a trailing newline included, and says what it holds", () => {
    const text = `${chat("a")}\r\n${chat("b")}\n${JSON.stringify({ custom_id: "c", method: "POST", url: "/v1/chat/completions", body: { model: "m/other", messages: [{ role: "user", content: "é ✓ 🙂" }] } })}\n\n`;
    for (const size of [1, 3, 7, 64, 100_000]) {
      const s = check(text, {}, size);
      expect(s.lines).toBe(3);
      expect(s.bytes).toBe(Buffer.byteLength(text));
      expect(s.endpoint).toBe("/v1/chat/completions");
      expect([...s.models]).toEqual([
        ["m/chat", 1],
        ["m/other", 3],
      ]);
    }
  });

  it("accepts completions and embeddings files", () => {
    const c = JSON.stringify({ custom_id: "1", method: "POST", url: "/v1/completions", body: { model: "m", prompt: "Once", max_tokens: 4 } });
    expect(check(c).endpoint).toBe("/v1/completions");
    const e = JSON.stringify({ custom_id: "1", method: "POST", url: "/v1/embeddings", body: { model: "e", input: ["a", "b"] } });
    expect(check(e).endpoint).toBe("/v1/embeddings");
  });

  it("names the line and the reason of the first fault", () => {
    const ok = `${chat("a")}\n${chat("b")}\n`;
    expect(refusal(`${ok}{"custom_id": "c",\n`)).toMatch(/^line 3: not valid JSON \(/);
    expect(refusal(`${ok}${chat("a")}\n`)).toBe('line 3: duplicate custom_id "a" (first on line 1)');
    expect(refusal(`${ok}[1,2]\n`)).toMatch(/^line 3: must be a JSON object/);
    expect(refusal(chat("a").replace('"POST"', '"GET"'))).toBe('line 1: method must be "POST", got "GET"');
    expect(refusal(`${ok}${chat("c").replace("/v1/chat/completions", "/v1/images/generations")}`)).toMatch(
      /^line 3: url must be one of \/v1\/chat\/completions/,
    );
    const embed = JSON.stringify({ custom_id: "e", method: "POST", url: "/v1/embeddings", body: { model: "e", input: "x" } });
    expect(refusal(`${ok}${embed}\n`)).toBe(
      'line 3: url "/v1/embeddings" differs from the first line\'s "/v1/chat/completions" (every line of a batch calls one endpoint)',
    );
    expect(refusal(JSON.stringify({ custom_id: 7, method: "POST", url: "/v1/chat/completions", body: {} }))).toMatch(/^line 1: custom_id must be a string/);
    expect(refusal(`${ok}${JSON.stringify({ custom_id: "c", method: "POST", url: "/v1/chat/completions" })}`)).toBe(
      "line 3: body must be a JSON object (the request)",
    );
    expect(refusal(`${ok}${JSON.stringify({ custom_id: "c", method: "POST", url: "/v1/chat/completions", body: { model: "m" } })}`)).toBe(
      "line 3: body: Missing required parameter: 'messages'.",
    );
    expect(refusal(`${ok}${chat("c", { temperature: "hot" })}`)).toMatch(/^line 3: body: Invalid value for 'temperature'/);
    expect(refusal(`${ok}${chat("c", { stream: true })}`)).toBe("line 3: body.stream must not be true (a batch answer is written whole)");
    expect(refusal(`${ok}${JSON.stringify({ custom_id: "c", method: "POST", url: "/v1/chat/completions", body: {}, extra: 1 })}`)).toMatch(
      /^line 3: unknown field "extra"/,
    );
    expect(refusal(`${chat("a")}\n\n${chat("b")}\n`)).toMatch(/^line 2: an empty line/);
    expect(refusal(`${chat("a")}\n${"[".repeat(100)}${"]".repeat(100)}\n`)).toMatch(/^line 2: JSON nested more than 64 levels deep/);
    expect(refusal(`${chat("a")}\n${chat("b\u0000")}\n`)).toMatch(/^line 2: custom_id: text must not contain NUL/);
  });

  it("refuses invalid UTF-8 with the line", () => {
    const c = new BatchInputChecker(LIMITS);
    c.push(Buffer.from(`${chat("a")}\n`));
    expect(() => c.push(Buffer.from([0x7b, 0xff, 0x7d, 0x0a]))).toThrow("line 2: not valid UTF-8");
  });

  it("refuses an empty file", () => {
    expect(() => check("")).toThrow(/The file has no lines/);
    expect(() => check("\n\n")).toThrow(/The file has no lines/);
  });

  it("stops at the limits: bytes, lines and one line's length, naming the line where each was passed", () => {
    const lines = Array.from({ length: 5 }, (_, i) => chat(`id-${i}`)).join("\n");
    expect(refusal(lines, { maxLines: 4 })).toBe("line 5: more than 4 requests in one file");
    const one = Buffer.byteLength(chat("id-0")) + 1;
    expect(refusal(lines, { maxBytes: one * 2 + 10 })).toBe(`line 3: the file is larger than the ${one * 2 + 10} bytes this server accepts`);
    expect(refusal(`${chat("a")}\n${chat("b", { user: "x".repeat(20_000) })}\n`)).toMatch(/^line 2: the line is longer than 10000 bytes/);
    // A long line is refused as it arrives, before its newline.
    const c = new BatchInputChecker(LIMITS);
    c.push(Buffer.from(`${chat("a")}\n`));
    expect(() => c.push(Buffer.alloc(20_000, 0x20))).toThrow(/^line 2: the line is longer/);
  });
});
