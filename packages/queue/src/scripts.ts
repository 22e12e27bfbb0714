/**
 * The queue's Lua scripts (`lua/*.lua`), defined once per connection as ioredis commands
 * (EVALSHA, loaded on first use and again after a Redis restart).
 */
import { readFileSync } from "node:fs";
import type { Redis } from "ioredis";

// Literal URLs: the image bundler finds the files read beside the code by them and copies them along.
const read = (url: URL) => readFileSync(url, "utf8");
const SCRIPTS = {
  queueTake: { lua: read(new URL("./lua/queue-take.lua", import.meta.url)) },
  queueGiveBack: { lua: read(new URL("./lua/queue-give-back.lua", import.meta.url)) },
  leaseRenew: { numberOfKeys: 1, lua: read(new URL("./lua/lease-renew.lua", import.meta.url)) },
  leaseHold: { numberOfKeys: 1, lua: read(new URL("./lua/lease-hold.lua", import.meta.url)) },
  leaseRelease: { numberOfKeys: 1, lua: read(new URL("./lua/lease-release.lua", import.meta.url)) },
  slotsGrant: { lua: read(new URL("./lua/slots-grant.lua", import.meta.url)) },
} as const;

export type ScriptRedis = Redis & {
  queueTake(numKeys: number, ...args: string[]): Promise<number[]>;
  queueGiveBack(numKeys: number, ...args: string[]): Promise<number>;
  leaseRenew(lease: string, holder: string, ms: number): Promise<number>;
  leaseHold(lease: string, holder: string, ms: number): Promise<number>;
  leaseRelease(lease: string, holder: string): Promise<number>;
  slotsGrant(numKeys: number, ...args: string[]): Promise<number>;
};

const defined = new WeakSet<Redis>();

/** The connection with the queue's scripts as commands. */
export function scripts(redis: Redis): ScriptRedis {
  if (!defined.has(redis)) {
    for (const [name, def] of Object.entries(SCRIPTS)) redis.defineCommand(name, def);
    defined.add(redis);
  }
  return redis as ScriptRedis;
}
