import { Writable } from "node:stream";
import { describe, expect, test } from "vitest";
import { createLogger, lazyChild } from "./logger.ts";

function capture(level = "info") {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split("\n")) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, logger: createLogger({ service: "t", level, destination }) };
}

describe("lazyChild", () => {
  test("writes the same lines as child(), bindings and redaction included", () => {
    const a = capture();
    const b = capture();
    a.logger.child({ requestId: "req_1", token: "secret-1" }).warn({ err: "x", authorization: "Bearer sk" }, "replica failed");
    lazyChild(b.logger, { requestId: "req_1", token: "secret-1" }).warn({ err: "x", authorization: "Bearer sk" }, "replica failed");
    const strip = ({ time: _t, ...rest }: Record<string, unknown>) => rest;
    expect(b.lines.map(strip)).toEqual(a.lines.map(strip));
    expect(b.lines[0]).toMatchObject({ requestId: "req_1", token: "[redacted]", authorization: "[redacted]", msg: "replica failed" });
  });

  test("makes no child for lines below the level, and one for all lines above it", () => {
    const { lines, logger } = capture("info");
    let made = 0;
    const child = logger.child;
    logger.child = function (this: typeof logger, ...a: Parameters<typeof child>) {
      made++;
      return child.apply(this, a);
    } as typeof logger.child;
    const log = lazyChild(logger, { requestId: "req_2" });
    log.debug({ x: 1 }, "calling agent");
    expect(made).toBe(0);
    log.info("one");
    log.error({ y: 2 }, "two");
    expect(made).toBe(1);
    made = 0;
    expect(lines.map((l) => [l.requestId, l.msg])).toEqual([
      ["req_2", "one"],
      ["req_2", "two"],
    ]);
    log.child({ component: "c" }).info("three");
    expect(lines[2]).toMatchObject({ requestId: "req_2", component: "c", msg: "three" });
  });
});
