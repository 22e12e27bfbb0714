import { describe, expect, it } from "vitest";
import { SseByteParser, SseParser } from "./sse.ts";

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

describe("SseByteParser", () => {
  function collectBytes(input: Uint8Array[]): string[] {
    const out: string[] = [];
    const p = new SseByteParser((d) => out.push(d.toString()));
    for (const c of input) p.push(c);
    p.end();
    return out;
  }

  it("gives the same events as SseParser across every chunk boundary, UTF-8 split inside a character included", () => {
    const text =
      'data: {"a":"héllo 🌍"}\n\ndata: {"b":2}\r\n\r\n: comment\nevent: x\nid: 3\n\ndata:nospace\n\ndata\n\ndata: x\ndata: y\n\ndata: [DONE]\n\ndata: last';
    const bytes = Buffer.from(text);
    const expected = collect([text]);
    expect(expected).toEqual(['{"a":"héllo 🌍"}', '{"b":2}', "nospace", "", "x\ny", "[DONE]", "last"]);
    for (let size = 1; size <= bytes.length; size += 1) {
      const parts: Uint8Array[] = [];
      for (let i = 0; i < bytes.length; i += size) parts.push(Uint8Array.from(bytes.subarray(i, i + size)));
      expect(collectBytes(parts)).toEqual(expected);
    }
  });

  it("hands out views of the bytes read when an event lies in one read (no copy)", () => {
    const read = Buffer.from('data: {"a":1}\n\ndata: {"b":2}\n\n');
    const views: Buffer[] = [];
    const p = new SseByteParser((d) => views.push(d));
    p.push(read);
    expect(views.map((v) => v.buffer === read.buffer)).toEqual([true, true]);
  });
});
