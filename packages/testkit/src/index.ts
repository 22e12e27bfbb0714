export * from "./postgres.ts";
export * from "./redis.ts";
export * from "./ports.ts";
export * from "./platform.ts";
