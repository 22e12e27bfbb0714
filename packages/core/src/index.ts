export * from "./errors.ts";
export * from "./logger.ts";
export * from "./metrics.ts";
export * from "./config.ts";
export * from "./shutdown.ts";
export * from "./sse.ts";
export * from "./parent.ts";
export * from "./buffers.ts";
