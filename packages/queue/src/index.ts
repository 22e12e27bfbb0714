export * from "./keys.ts";
export * from "./messages.ts";
export * from "./lease.ts";
export * from "./client.ts";
export * from "./consumer.ts";
export type { UsedTokens } from "./releases.ts";
export { assertRedisAccess } from "./redis-access.ts";
export { bumpSlotEpoch, readSlotLeases, readSlotReports, writeSlotLeases } from "./slot-grants.ts";
export { type SlotLease, parseSlotLease } from "./slots.ts";
