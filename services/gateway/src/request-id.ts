/**
 * Request ids. The platform's id is always its own (`req_` + 96 random bits: unique across
 * gateways and restarts without coordination): it keys dispatch, the agent's once-only check,
 * cancellation, the rate limiter's open set and the usage record, and it is the
 * `x-request-id` every answer carries (the official SDKs expose it as `request_id`). The
 * client's own id — OpenAI's `X-Client-Request-Id`, or an `X-Request-Id` it sent — is only a
 * correlation field: logged, echoed as `x-client-request-id`, and sent to the engine
 * namespaced by tenant. It keys nothing, so two tenants (or one client retrying) sending the
 * same id can never block each other.
 */
import { randomFillSync } from "node:crypto";
import type { FastifyRequest } from "fastify";

const ID_BYTES = 12;
/** Random bytes for 256 ids, filled from the CSPRNG at once: one call per 256 requests, not one each. */
const pool = Buffer.alloc(ID_BYTES * 256);
let at = pool.length;

export function newRequestId(): string {
  if (at === pool.length) {
    randomFillSync(pool);
    at = 0;
  }
  at += ID_BYTES;
  return `req_${pool.toString("hex", at - ID_BYTES, at)}`;
}

/** Printable, no spaces, at most 512 characters (OpenAI's limit for X-Client-Request-Id). */
const CLIENT_ID = /^[\x21-\x7e]{1,512}$/;

/** The id the client gave the request, if it gave a usable one. */
export function clientRequestId(req: FastifyRequest): string | undefined {
  for (const name of ["x-client-request-id", "x-request-id"]) {
    const h = req.headers[name];
    if (typeof h === "string" && CLIENT_ID.test(h)) return h;
  }
  return undefined;
}
