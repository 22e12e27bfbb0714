/**
 * The fast path, the Redis side of the dispatching scheduler: read what gateways report and
 * the leases as they stand, and write the leases — fenced, so that only the deployment's
 * dispatch-lease holder, in its own epoch, writes them (`lua/slots-grant.lua`). The gateway's
 * side is `slots.ts`; what to lend is `planGrants` (`@infera/policy`).
 */
import type { Redis } from "ioredis";
import type { QueueKeys } from "./keys.ts";
import { parseSlotReport, type SlotReport } from "./messages.ts";
import { scripts } from "./scripts.ts";
import { parseSlotLease, type SlotLease, slotLeaseFields } from "./slots.ts";

export type { SlotLease } from "./slots.ts";

/** A new dispatch-lease holder's epoch for a deployment's slot leases (every holder gets a new one). */
export async function bumpSlotEpoch(redis: Redis, keys: QueueKeys, deploymentId: string): Promise<number> {
  return redis.incr(keys.slotEpoch(deploymentId));
}

/** Every gateway's report on a deployment (what it runs on its leased slots). */
export async function readSlotReports(redis: Redis, keys: QueueKeys, deploymentId: string): Promise<Map<string, SlotReport>> {
  const h = await redis.hgetall(keys.slotReports(deploymentId));
  const out = new Map<string, SlotReport>();
  for (const [gw, json] of Object.entries(h)) {
    const r = parseSlotReport(json);
    if (r) out.set(gw, r);
  }
  return out;
}

/** The leases of these gateways as Redis holds them (absent: none, or it lapsed). */
export async function readSlotLeases(redis: Redis, keys: QueueKeys, deploymentId: string, gateways: readonly string[]): Promise<Map<string, SlotLease>> {
  const out = new Map<string, SlotLease>();
  if (gateways.length === 0) return out;
  const pipe = redis.pipeline();
  for (const gw of gateways) pipe.hgetall(keys.slots(deploymentId, gw));
  const results = (await pipe.exec()) ?? [];
  gateways.forEach((gw, i) => {
    const l = parseSlotLease(results[i]?.[1] as Record<string, string> | null);
    if (l) out.set(gw, l);
  });
  return out;
}

/**
 * Writes leases (undefined: delete that gateway's) with `ttlMs`, in one script that checks
 * that `holder` still holds the dispatch lease and `epoch` is current. False: fenced off.
 */
export async function writeSlotLeases(
  redis: Redis,
  keys: QueueKeys,
  o: { deploymentId: string; holder: string; epoch: number; ttlMs: number },
  leases: ReadonlyMap<string, SlotLease | undefined>,
): Promise<boolean> {
  if (leases.size === 0) return true;
  const ks = [keys.dispatchLease(o.deploymentId), keys.slotEpoch(o.deploymentId)];
  const args = [o.holder, String(o.epoch), String(o.ttlMs)];
  for (const [gw, l] of leases) {
    ks.push(keys.slots(o.deploymentId, gw));
    args.push(l ? JSON.stringify(slotLeaseFields(l)) : "");
  }
  return (await scripts(redis).slotsGrant(ks.length, ...ks, ...args)) === 1;
}
