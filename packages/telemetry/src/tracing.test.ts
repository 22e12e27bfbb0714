import { createLogger } from "@infera/core";
import { describe, expect, test } from "vitest";
import { noTracing, startTracing, tracingConfig } from "./tracing.ts";

const TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

describe("tracing configuration (the standard OTEL_* variables)", () => {
  test("off unless an exporter or an endpoint is named, and OTEL_SDK_DISABLED wins", () => {
    expect(tracingConfig({}, "gateway").enabled).toBe(false);
    expect(tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }, "gateway")).toMatchObject({ enabled: true, exporters: ["otlp"] });
    expect(tracingConfig({ OTEL_TRACES_EXPORTER: "console" }, "gateway")).toMatchObject({ enabled: true, exporters: ["console"] });
    expect(tracingConfig({ OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }, "gateway").enabled).toBe(false);
    expect(tracingConfig({ OTEL_SDK_DISABLED: "true", OTEL_TRACES_EXPORTER: "otlp" }, "gateway").enabled).toBe(false);
    expect(tracingConfig({ OTEL_TRACES_EXPORTER: "otlp", OTEL_SERVICE_NAME: "edge" }, "gateway").serviceName).toBe("edge");
    expect(tracingConfig({ OTEL_TRACES_EXPORTER: "otlp" }, "gateway").serviceName).toBe("infera-gateway");
  });

  test("a value it cannot honour fails naming the variable", () => {
    expect(() => tracingConfig({ OTEL_TRACES_EXPORTER: "jaeger" }, "g")).toThrow(/OTEL_TRACES_EXPORTER/);
    expect(() => tracingConfig({ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }, "g")).toThrow(/OTEL_EXPORTER_OTLP_PROTOCOL/);
    expect(() => tracingConfig({ OTEL_TRACES_SAMPLER: "sometimes" }, "g")).toThrow(/OTEL_TRACES_SAMPLER/);
    expect(() => tracingConfig({ OTEL_TRACES_SAMPLER_ARG: "2" }, "g")).toThrow(/OTEL_TRACES_SAMPLER_ARG/);
    expect(() => tracingConfig({ OTEL_BSP_SCHEDULE_DELAY: "-1" }, "g")).toThrow(/OTEL_BSP_SCHEDULE_DELAY/);
  });
});

describe("tracing off", () => {
  test("records nothing and carries a client's traceparent on unchanged", async () => {
    const t = await startTracing(tracingConfig({}, "gateway"), createLogger({ service: "t", level: "silent" }));
    expect(t).toBe(noTracing);
    const root = t.start("chat m", { parent: TP });
    const child = t.start("queue", { parent: root });
    expect(child.traceparent).toBe(TP);
    expect(child.traceId).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    // No context, or a bad one: nothing to carry on.
    expect(t.start("x").traceparent).toBeUndefined();
    expect(t.start("x", { parent: "nonsense" }).traceparent).toBeUndefined();
  });
});

describe("tracing on", () => {
  test("a span continues the client's trace and gives its own id downstream", async () => {
    const t = await startTracing(tracingConfig({ OTEL_TRACES_EXPORTER: "none,console" }, "gateway"), createLogger({ service: "t", level: "silent" }));
    // Console export would print: keep this one unsampled by its parent's flag.
    const unsampled = TP.replace(/01$/, "00");
    const root = t.start("chat m", { parent: unsampled, kind: "server" });
    expect(root.traceId).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    expect(root.traceparent).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-00$/);
    expect(root.traceparent).not.toBe(unsampled);
    const child = t.start("engine", { parent: root });
    expect(child.traceId).toBe(root.traceId);
    child.end();
    root.end();
    await t.stop();
  });
});
