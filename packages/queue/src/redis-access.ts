/**
 * A service's first word with Redis: one PING before anything else connects. A server that
 * refuses this service's credentials (NOAUTH: no password given; WRONGPASS: another one)
 * stops the start with a message saying so and where the password goes, instead of every
 * later command failing with "Connection is closed". A server that is not up yet is left to
 * the clients' reconnects, as before.
 */
import { Redis } from "ioredis";
import { ConfigError } from "@infera/core";

export async function assertRedisAccess(url: string): Promise<void> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 5_000, enableReadyCheck: false });
  // A refused AUTH arrives as an "error" event; the connect itself then only says "Connection is closed."
  let refused: Error | undefined;
  r.on("error", (err: Error) => (refused ??= err));
  const where = ((u) => `${u.protocol}//${u.host}`)(new URL(url));
  try {
    await r.connect();
    await r.ping();
  } catch (err) {
    const message = [refused?.message, (err as Error).message ?? String(err)].filter(Boolean).join("; ");
    if (/NOAUTH|WRONGPASS|invalid password|invalid username-password/i.test(message)) {
      throw new ConfigError(
        `Redis at ${where} refused this service: ${message} (give the password in REDIS_URL, redis://:PASSWORD@host:port, or in REDIS_PASSWORD)`,
      );
    }
  } finally {
    r.disconnect();
  }
}
