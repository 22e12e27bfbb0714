export * from "./postgres.ts";
export * from "./redis.ts";
export * from "./ports.ts";
export * from "./platform.ts";
export * from "./processes.ts";
export * from "./stores.ts";
export * from "./gateway.ts";
