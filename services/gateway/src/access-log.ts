/**
 * The access log: one structured line per finished inference request, for joining a
 * tenant's "this request was slow" with the trace, the engine's log (X-Request-Id) and the
 * usage record. It names the request, never its content: no prompt, completion, secret or
 * header is among its fields. `ACCESS_LOG_SAMPLE` (0..1) keeps that share of successful
 * requests; a request that failed is always written.
 */
import type { Logger } from "@infera/core";

export interface AccessLine {
  requestId: string;
  clientRequestId?: string;
  traceId?: string;
  /** Absent when the key was refused. */
  tenantId?: string;
  keyId?: string;
  tier?: string;
  route: string;
  endpoint?: string;
  model?: string;
  deploymentId?: string;
  replicaId?: string;
  stream?: boolean;
  /** The HTTP status the client got (499: it went away first). */
  status: number;
  tokensIn?: number;
  tokensOut?: number;
  /** Enqueue to assignment, over every attempt. */
  queueMs?: number;
  ttftMs?: number;
  totalMs: number;
  finishReason?: string;
  errorCode?: string;
  attempts?: number;
}

export interface AccessLogOptions {
  logger: Logger;
  /** Share of successful requests written, 0..1. */
  sample: number;
  random?: () => number;
}

export class AccessLog {
  private readonly log: Logger;
  private readonly random: () => number;

  constructor(private readonly o: AccessLogOptions) {
    // Not redacted: a line holds only the fields below (ids, numbers, the route), none of
    // them a path the logger's redaction names, and redacting costs ~10 µs a line (a request's).
    this.log = o.logger.child({ component: "access" }, { redact: [] });
    this.random = o.random ?? Math.random;
  }

  write(l: AccessLine): void {
    if (l.errorCode === undefined && (this.o.sample <= 0 || (this.o.sample < 1 && this.random() >= this.o.sample))) return;
    // Field by field, never a spread: whatever else the object passed holds stays out of the log.
    const line: AccessLine = {
      requestId: l.requestId,
      clientRequestId: l.clientRequestId,
      traceId: l.traceId,
      tenantId: l.tenantId,
      keyId: l.keyId,
      tier: l.tier,
      route: l.route,
      endpoint: l.endpoint,
      model: l.model,
      deploymentId: l.deploymentId,
      replicaId: l.replicaId,
      stream: l.stream,
      status: l.status,
      tokensIn: l.tokensIn,
      tokensOut: l.tokensOut,
      queueMs: round(l.queueMs),
      ttftMs: round(l.ttftMs),
      totalMs: round(l.totalMs),
      finishReason: l.finishReason,
      errorCode: l.errorCode,
      attempts: l.attempts,
    };
    this.log.info(line, "request");
  }
}

function round<T extends number | undefined>(ms: T): T {
  return (ms === undefined ? undefined : Math.round(ms * 10) / 10) as T;
}
