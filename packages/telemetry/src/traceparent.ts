/**
 * W3C Trace Context's `traceparent` header (https://www.w3.org/TR/trace-context/): parsed
 * and checked without the OpenTelemetry SDK, so a client's trace context can be carried on
 * (Redis job, gRPC metadata, the engine's headers) even when this process records no spans.
 */

/** `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`; later versions may append fields. */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = "0".repeat(32);
const ZERO_SPAN = "0".repeat(16);

export interface TraceParent {
  traceId: string;
  spanId: string;
  /** Bit 0: the caller sampled it. */
  flags: number;
}

/** The header's ids, or undefined when it is not a valid traceparent (the spec says: then ignore it). */
export function parseTraceparent(header: string | undefined): TraceParent | undefined {
  if (header === undefined || header.length > 512) return undefined;
  const m = TRACEPARENT.exec(header.trim());
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m as unknown as [string, string, string, string, string, string | undefined];
  if (version === "ff" || (version === "00" && rest !== undefined)) return undefined;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  return { traceId, spanId, flags: Number.parseInt(flags, 16) };
}

export function formatTraceparent(p: TraceParent): string {
  return `00-${p.traceId}-${p.spanId}-${(p.flags & 0xff).toString(16).padStart(2, "0")}`;
}
