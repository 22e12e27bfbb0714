/**
 * Reads a deployment's replica logs from the scheduler (contracts' runtime-view.ts): asks
 * on the log-request channel, then reads the request's own stream with a connection of its
 * own (blocking reads), renewing the request's lease while it reads, so the scheduler stops
 * sending when this reader goes. Nothing answering within `firstMs`, or nothing at all
 * (not even a beat) for `idleMs`, is an `unavailable` error; so is the scheduler's own.
 */
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { PlatformError } from "@infera/core";
import { LOG_FIELD, LOG_LEASE_MS, type LogEntry, type LogRequest, type RedisKeys } from "@infera/contracts";

export type LogLineEntry = Extract<LogEntry, { t: "line" }>;

export interface LogStreamOptions {
  redis: Redis;
  keys: RedisKeys;
  /** How long the first answer may take. */
  firstMs?: number;
  /** Longest silence (the scheduler beats every 5 s while following). */
  idleMs?: number;
}

const BLOCK_MS = 1_000;
const RENEW_MS = LOG_LEASE_MS / 3;

/** The lines asked for, in order; ends when they are all sent (or, following, when `signal` aborts). */
export async function* readLogs(o: LogStreamOptions, request: Omit<LogRequest, "sid">, signal: AbortSignal): AsyncGenerator<LogLineEntry> {
  const { redis, keys } = o;
  const firstMs = o.firstMs ?? 5_000;
  const idleMs = o.idleMs ?? 20_000;
  const sid = randomUUID();
  const stream = keys.logStream(sid);
  const lease = keys.logLease(sid);
  await redis.set(lease, "1", "PX", LOG_LEASE_MS);
  const reader = redis.duplicate({ maxRetriesPerRequest: 1, lazyConnect: true });
  reader.on("error", () => {});
  const onAbort = () => reader.disconnect();
  signal.addEventListener("abort", onAbort, { once: true });
  const renew = setInterval(() => void redis.pexpire(lease, LOG_LEASE_MS).catch(() => {}), RENEW_MS);
  try {
    const listeners = await redis.publish(keys.logRequests, JSON.stringify({ ...request, sid } satisfies LogRequest));
    if (listeners === 0) throw new PlatformError("unavailable", "No scheduler is running to read the logs; try again.", { retryAfterS: 2 });
    await reader.connect();
    const started = Date.now();
    let answered = false;
    let lastSeen = Date.now();
    let lastId = "0";
    while (!signal.aborted) {
      let res: [string, [string, string[]][]][] | null;
      try {
        res = (await reader.xread("COUNT", 500, "BLOCK", BLOCK_MS, "STREAMS", stream, lastId)) as [string, [string, string[]][]][] | null;
      } catch (err) {
        if (signal.aborted) return;
        throw new PlatformError("unavailable", "The logs could not be read from Redis; try again.", { cause: err, retryAfterS: 1 });
      }
      const now = Date.now();
      if (!res) {
        if (!answered && now - started > firstMs)
          throw new PlatformError("unavailable", "No scheduler answered the log request (is a reconciler leader running?); try again.", { retryAfterS: 2 });
        if (answered && now - lastSeen > idleMs)
          throw new PlatformError("unavailable", "The scheduler reading the logs stopped answering.", { retryAfterS: 2 });
        continue;
      }
      for (const [, entries] of res) {
        for (const [id, fields] of entries) {
          lastId = id;
          answered = true;
          lastSeen = now;
          const i = fields.indexOf(LOG_FIELD);
          let e: LogEntry;
          try {
            e = JSON.parse(fields[i + 1] ?? "") as LogEntry;
          } catch {
            continue;
          }
          if (e.t === "line") yield e;
          else if (e.t === "end") return;
          else if (e.t === "error") throw new PlatformError(e.code, e.message, e.code === "not_found" ? { param: "replica" } : { retryAfterS: 2 });
        }
      }
    }
  } finally {
    clearInterval(renew);
    signal.removeEventListener("abort", onAbort);
    reader.disconnect();
    await redis.del(lease, stream, `${stream}:owner`).catch(() => {});
  }
}
