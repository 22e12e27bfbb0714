import { Writable } from "node:stream";
import { createLogger } from "@infera/core";
import { describe, expect, test } from "vitest";
import { AccessLog, type AccessLine } from "./access-log.ts";

function capture(sample: number, random: () => number) {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
      cb();
    },
  });
  return { log: new AccessLog({ logger: createLogger({ service: "gateway", destination }), sample, random }), lines };
}

const ok: AccessLine = { requestId: "req_1", tenantId: "ten_1", keyId: "key_1", route: "/v1/chat/completions", status: 200, totalMs: 12.345, queueMs: 0.04 };

describe("access log sampling (ACCESS_LOG_SAMPLE)", () => {
  test("keeps that share of successful requests and every failed one", () => {
    let r = 0;
    const { log, lines } = capture(0.25, () => (r = (r + 0.1) % 1));
    for (let i = 0; i < 100; i++) log.write({ ...ok, requestId: `req_${i}` });
    expect(lines.length).toBeGreaterThanOrEqual(20);
    expect(lines.length).toBeLessThanOrEqual(30);
    log.write({ ...ok, requestId: "req_failed", status: 503, errorCode: "unavailable" });
    expect(lines.at(-1)).toMatchObject({ component: "access", msg: "request", requestId: "req_failed", errorCode: "unavailable" });
  });

  test("0 writes only failures, 1 writes everything, times rounded to 0.1 ms", () => {
    const none = capture(0, Math.random);
    none.log.write(ok);
    none.log.write({ ...ok, status: 400, errorCode: "invalid_request" });
    expect(none.lines.map((l) => l.status)).toEqual([400]);
    const all = capture(1, () => 0.999);
    all.log.write(ok);
    expect(all.lines[0]).toMatchObject({ requestId: "req_1", totalMs: 12.3, queueMs: 0 });
  });

  test("a line holds the access fields only: anything else on the object passed stays out", () => {
    const all = capture(1, () => 0);
    const extra = { ...ok, prompt: "a user's prompt", authorization: "Bearer sk-live", headers: { cookie: "c" } };
    all.log.write(extra);
    expect(all.lines[0]).toMatchObject({ requestId: "req_1", tenantId: "ten_1", keyId: "key_1", route: "/v1/chat/completions", status: 200 });
    expect(JSON.stringify(all.lines[0])).not.toMatch(/prompt|authorization|cookie|sk-live/);
  });
});
