export * from "./keys.ts";
export * from "./messages.ts";
export * from "./lease.ts";
export * from "./client.ts";
export * from "./consumer.ts";
export type { UsedTokens } from "./releases.ts";
export { assertRedisAccess } from "./redis-access.ts";
