import { stripVTControlCharacters } from "node:util";
import { describe, expect, it } from "vitest";
import type { Deployment, Replicas } from "./api-types.ts";
import { describeApiError } from "./client.ts";
import { intIn } from "./context.ts";
import { statusLine } from "./watch.ts";

describe("what infera tells a person", () => {
  it("prints the API's message with the field it named", () => {
    expect(describeApiError(400, { error: { message: "Invalid value for 'gpu'.", param: "gpu" } })).toBe("Invalid value for 'gpu'. (field: gpu)");
    expect(describeApiError(409, { error: { message: "It is stopped.", param: null } })).toBe("It is stopped.");
    expect(describeApiError(502, "<html>")).toBe("The platform answered HTTP 502.");
  });

  it("refuses a number out of range or not a number, naming the range", () => {
    const p = intIn(1, 8);
    expect(p("8")).toBe(8);
    expect(() => p("9")).toThrow("9 is not between 1 and 8.");
    expect(() => p("2.5")).toThrow("'2.5' is not a whole number.");
  });

  it("shows the lifecycle step, ready replicas and why the others are not ready in the status line", () => {
    const d = { status: "deploying", instances: { running: 0, pending: 2 } } as Deployment;
    const r = {
      data: [
        { ready: true, phase: "ready", reason: null },
        { ready: false, phase: "starting", reason: "the engine is not healthy yet" },
      ],
    } as Replicas;
    expect(stripVTControlCharacters(statusLine(d, r))).toBe("deploying [3/4] · 1/2 replicas ready · starting: the engine is not healthy yet");
  });
});
