/**
 * Service-to-service authentication on the gateway → worker agent gRPC path: a per-release
 * bearer token (AGENT_AUTH_TOKEN) that the gateway sends as `authorization: Bearer <token>`
 * metadata on every call and the agent checks in constant time before it does anything.
 * A call without it, or with another token, is refused with UNAUTHENTICATED.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import * as grpc from "@grpc/grpc-js";

/** Shortest token an agent accepts: a guessable secret is no boundary. */
export const MIN_AGENT_TOKEN_LENGTH = 32;

const HEADER = "authorization";
const SCHEME = "Bearer ";

/** A client interceptor that adds the bearer token to every call's metadata. */
export function agentAuthInterceptor(token: string): grpc.Interceptor {
  const value = `${SCHEME}${token}`;
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set(HEADER, value);
        next(metadata, listener);
      },
    });
}

export type AgentAuthResult = "ok" | "missing" | "wrong";

const digest = (s: string | Buffer): Buffer => createHash("sha256").update(s).digest();

/**
 * Checks a call's metadata against the expected token. Both sides are hashed first, so the
 * compare takes as long whatever the length or prefix of what was sent.
 */
export class AgentTokenCheck {
  private readonly expected: Buffer;

  constructor(token: string) {
    this.expected = digest(`${SCHEME}${token}`);
  }

  check(metadata: grpc.Metadata): AgentAuthResult {
    const values = metadata.get(HEADER);
    if (values.length === 0) return "missing";
    if (values.length > 1) return "wrong";
    const sent = values[0]!;
    return timingSafeEqual(digest(typeof sent === "string" ? sent : Buffer.from(sent)), this.expected) ? "ok" : "wrong";
  }
}
