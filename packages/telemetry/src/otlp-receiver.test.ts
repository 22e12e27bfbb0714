/**
 * The receiver decodes what the real OpenTelemetry exporter sends (OTLP/HTTP protobuf):
 * spans made by `startTracing` arrive with their ids, parents, kinds, times and attributes.
 */
import { createLogger } from "@infera/core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { OtlpReceiver, traceTree } from "./otlp-receiver.ts";
import { startTracing, tracingConfig } from "./tracing.ts";

const receiver = new OtlpReceiver();
beforeAll(() => receiver.start());
afterAll(() => receiver.stop());

describe("OTLP receiver", () => {
  test("decodes the SDK's protobuf export: one trace, parents, kinds and typed attributes", async () => {
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_SERVICE_NAME: "unit" };
    const tracing = await startTracing(tracingConfig(env, "x"), createLogger({ service: "t", level: "silent" }));
    const client = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const root = tracing.start("chat m", { parent: client, kind: "server", attributes: { "gen_ai.request.model": "m", n: 3, on: true } });
    const child = tracing.start("infera.queue.wait", { parent: root, kind: "producer" });
    child.setAttributes({ "gen_ai.response.finish_reasons": ["stop", "length"], ratio: 0.5 });
    child.end();
    root.fail("timeout", "too slow");
    root.end();
    await tracing.stop();

    const spans = receiver.trace("0af7651916cd43dd8448eb211c80319c");
    expect(spans.map((s) => s.name).sort()).toEqual(["chat m", "infera.queue.wait"]);
    const r = spans.find((s) => s.name === "chat m")!;
    const c = spans.find((s) => s.name === "infera.queue.wait")!;
    expect(r).toMatchObject({ parentSpanId: "b7ad6b7169203331", kind: 2, service: "unit", statusCode: 2, statusMessage: "too slow" });
    expect(r.attributes).toMatchObject({ "gen_ai.request.model": "m", n: 3, on: true, "error.type": "timeout" });
    expect(c).toMatchObject({ parentSpanId: r.spanId, kind: 4 });
    expect(c.attributes).toMatchObject({ "gen_ai.response.finish_reasons": ["stop", "length"], ratio: 0.5 });
    expect(r.endNs).toBeGreaterThanOrEqual(c.endNs);
    expect(traceTree(spans)).toMatch(/^unit: chat m .*ERROR timeout\n {2}unit: infera\.queue\.wait/);
    // And it serves what it holds.
    const list = (await (await fetch(`${receiver.endpoint}/traces`)).json()) as { data: { traceId: string; root: string }[] };
    expect(list.data[0]).toMatchObject({ traceId: "0af7651916cd43dd8448eb211c80319c", root: "chat m" });
  });
});
