import { describe, expect, it } from "vitest";
import { lineFault } from "./batch-runner.ts";

describe("whose fault a batch line's status is", () => {
  it("the request's own (recorded at once): success and client errors", () => {
    for (const s of [200, 400, 401, 403, 404, 413]) expect(lineFault(s)).toBe("answer");
  });

  it("the platform's (run again later, never recorded): nothing written, rate limits, our own 5xx", () => {
    for (const s of [0, 429, 500, 503, 504]) expect(lineFault(s)).toBe("platform");
  });

  it("the engine's (tried again, then recorded): its 5xx as the gateway answers it", () => {
    expect(lineFault(502)).toBe("engine");
  });
});
