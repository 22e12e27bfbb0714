import { describe, expect, it } from "vitest";
import { SseParser } from "./sse.ts";

function collect(input: string[]): string[] {
  const out: string[] = [];
  const p = new SseParser((d) => out.push(d));
  for (const c of input) p.push(Buffer.from(c));
  p.end();
  return out;
}

describe("SseParser", () => {
  it("emits each event when its blank line arrives, across arbitrary chunk boundaries", () => {
    const text = 'data: {"a":1}\n\ndata: {"b":2}\r\n\r\n: comment\n\ndata: [DONE]\n\n';
    for (let size = 1; size <= text.length; size += 3) {
      const parts: string[] = [];
      for (let i = 0; i < text.length; i += size) parts.push(text.slice(i, i + size));
      expect(collect(parts)).toEqual(['{"a":1}', '{"b":2}', "[DONE]"]);
    }
  });

  it("joins multi-line data and keeps a final event without a blank line", () => {
    expect(collect(["data: x\ndata: y\n\ndata: last"])).toEqual(["x\ny", "last"]);
  });

  it("decodes UTF-8 split inside a character", () => {
    const bytes = Buffer.from('data: "héllo 🌍"\n\n');
    const out: string[] = [];
    const p = new SseParser((d) => out.push(d));
    for (const b of bytes) p.push(Uint8Array.of(b));
    expect(out).toEqual(['"héllo 🌍"']);
  });
});
