import { describe, expect, it } from "vitest";
import { ownedBuffer } from "./buffers.ts";

describe("ownedBuffer", () => {
  it("copies a string or bytes into memory of exactly their size, not a slice of Node's shared slab", () => {
    const pooled = Buffer.from('{"model":"m"}');
    expect(pooled.buffer.byteLength).toBeGreaterThan(pooled.length); // what it avoids
    for (const from of ['{"model":"m","messages":[{"role":"user","content":"héllo"}]}', pooled, new Uint8Array([1, 2, 3])]) {
      const b = ownedBuffer(from);
      expect(b.buffer.byteLength).toBe(b.length);
      expect(Buffer.compare(b, typeof from === "string" ? Buffer.from(from) : Buffer.from(from))).toBe(0);
    }
  });
});
