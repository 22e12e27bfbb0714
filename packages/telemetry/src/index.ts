export * from "./traceparent.ts";
export * from "./tracing.ts";
export * from "./otlp-receiver.ts";
