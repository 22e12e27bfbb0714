export * from "./traceparent.ts";
export * from "./tracing.ts";
