import { describe, expect, it } from "vitest";
import { findBadString, isBadText, scanJson } from "./edge-input.ts";

describe("the edge's input checks", () => {
  it("measures JSON depth in one pass, ignoring brackets inside strings", () => {
    expect(scanJson(`${"[".repeat(64)}${"]".repeat(64)}`)).toBe("ok");
    expect(scanJson(`${"[".repeat(65)}${"]".repeat(65)}`)).toBe("too_deep");
    expect(scanJson(`{"a":"${"[".repeat(1000)}"}`)).toBe("ok");
    expect(scanJson(`{"a":"\\"${"{".repeat(1000)}"}`)).toBe("ok");
    expect(scanJson(`${'{"a":'.repeat(10_000)}1${"}".repeat(10_000)}`)).toBe("too_deep");
  });

  it("notes NUL and surrogate escapes, and finds the string that is bad by its path", () => {
    expect(scanJson('{"a":"x"}')).toBe("ok");
    expect(scanJson('{"a":"\\u0000"}')).toBe("check_strings");
    expect(scanJson('{"a":"\\ud83e\\udd16"}')).toBe("check_strings");
    expect(findBadString(JSON.parse('{"a":"\\ud83e\\udd16"}'))).toBeUndefined();
    expect(findBadString(JSON.parse('{"m":[{"c":"ok"},{"c":"\\ud800"}]}'))).toBe("m[1].c");
    expect(findBadString(JSON.parse('{"meta":{"k\\u0000":"v"}}'))).toBe("meta");
    expect(isBadText("x\udc00")).toBe(true);
    expect(isBadText("🤖")).toBe(false);
  });
});
