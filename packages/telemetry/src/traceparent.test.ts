import { describe, expect, test } from "vitest";
import { formatTraceparent, parseTraceparent } from "./traceparent.ts";

describe("traceparent", () => {
  test("a valid header round-trips", () => {
    const h = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    expect(parseTraceparent(h)).toEqual({ traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", flags: 1 });
    expect(formatTraceparent(parseTraceparent(h)!)).toBe(h);
  });

  test("what the spec says to ignore is ignored", () => {
    for (const bad of [
      "",
      "garbage",
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    ])
      expect(parseTraceparent(bad), bad).toBeUndefined();
    // A later version may carry more fields: the known ones are read.
    expect(parseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more")?.flags).toBe(0);
  });
});
