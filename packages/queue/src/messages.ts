/**
 * What travels through the queue, as TypeBox schemas: the queued request (`InferJob`, a
 * stream entry), the scheduler's answer to a gateway (`Assignment`, on the gateway's reply
 * channel) and a gateway's report that requests are done with their replica (`Release`, on
 * the scheduler's channel). The types come from the schemas, and every consumer parses with
 * them: a message that does not match is dropped where it arrives, never half-read.
 *
 * The schemas accept fields they do not know (a newer peer may send more during a rollout).
 */
import { ENDPOINT_KINDS } from "@infera/contracts";
import Type, { type Static } from "typebox";
import { Compile } from "typebox/compile";

const Count = Type.Integer({ minimum: 0 });

/** A request waiting for a replica. The body stays in the gateway; only what placement needs travels. */
export const InferJob = Type.Object({
  requestId: Type.String(),
  /** The gateway instance to tell where to send it (its reply channel). */
  gatewayId: Type.String(),
  tenantId: Type.String(),
  keyId: Type.String(),
  endpoint: Type.Enum(ENDPOINT_KINDS),
  /** Hashes of the prompt's leading blocks, for prefix-affine placement. */
  prefixHashes: Type.Array(Type.String()),
  /** Prompt tokens (estimated) plus max output tokens: what fairness charges up front. */
  estimatedTokens: Type.Number({ minimum: 0 }),
  /** Prompt tokens (estimated): the prefill work placement adds to the replica it picks. */
  promptTokens: Type.Optional(Type.Number({ minimum: 0 })),
  /** Epoch ms after which the gateway has given up on it. */
  deadline: Type.Number(),
  enqueuedAt: Type.Number(),
  /** Dispatch order class (`PRIORITY`): 0 = re-queued after a replica failed it (front). */
  priority: Count,
  /** Replicas that already failed this request before its first byte. */
  excludeReplicas: Type.Optional(Type.Array(Type.String())),
  /** 0 for the first try; each re-queue adds one. */
  attempt: Count,
  /** W3C traceparent of the gateway's queue-wait span (or the client's, tracing off): the scheduler's placement span continues it. */
  traceparent: Type.Optional(Type.String({ maxLength: 256 })),
});
export type InferJob = Static<typeof InferJob>;

/** The scheduler placed the request: the gateway calls this replica, and releases it to this scheduler. */
export const Assigned = Type.Object({
  type: Type.Literal("assigned"),
  requestId: Type.String(),
  replicaId: Type.String(),
  address: Type.String(),
  queuedMs: Type.Number(),
  schedulerId: Type.String(),
  deploymentId: Type.String(),
  /** Set by the gateway itself when it placed the request on a leased slot (the fast path): the lease's epoch. */
  epoch: Type.Optional(Count),
});
export type Assigned = Static<typeof Assigned>;

export const REJECTION_CODES = ["unavailable", "timeout", "not_found"] as const;
export type RejectionCode = (typeof REJECTION_CODES)[number];

/** The scheduler answers the request without a replica (deadline passed, deployment stopped or deleted). */
export const Rejected = Type.Object({
  type: Type.Literal("rejected"),
  requestId: Type.String(),
  code: Type.Enum(REJECTION_CODES),
  message: Type.String(),
  retryAfterS: Type.Optional(Type.Number({ minimum: 0 })),
});
export type Rejected = Static<typeof Rejected>;

/** What the scheduler tells a gateway: which replica serves a request, or why none will. */
export const Assignment = Type.Union([Assigned, Rejected]);
export type Assignment = Static<typeof Assignment>;

/** One tenant's usage in a release (sums over the released requests). */
export const ReleaseUsage = Type.Object({
  tenantId: Type.String(),
  /** What the jobs carried as `estimatedTokens` (charged as input at dispatch). */
  estimatedTokens: Type.Number({ minimum: 0 }),
  promptTokens: Type.Number({ minimum: 0 }),
  completionTokens: Type.Number({ minimum: 0 }),
});
export type ReleaseUsage = Static<typeof ReleaseUsage>;

/** What a gateway tells the scheduler that placed requests once they end on their replica. */
export const Release = Type.Object({
  deploymentId: Type.String(),
  replicaId: Type.String(),
  count: Count,
  /** The replica could not be reached before the first byte. */
  failed: Type.Boolean(),
  /**
   * Tokens the released requests actually used, per tenant, so the scheduler's fair queue can
   * charge output tokens at completion (and correct the estimate it charged at dispatch).
   */
  usage: Type.Optional(Type.Array(ReleaseUsage)),
  /** Fast-path requests (placed by their gateway on a leased slot): what that gateway now runs on the replica. */
  lease: Type.Optional(Type.Object({ gatewayId: Type.String(), epoch: Count, seq: Count, seen: Count, inUse: Count })),
});
export type Release = Static<typeof Release>;

/**
 * What a gateway runs on its leased slots of one deployment (a field of `slotReports`), written
 * every sync tick. `seen`: the lease version it applied; `seq` orders its reports and releases.
 */
export const SlotReport = Type.Object({
  seq: Count,
  seen: Count,
  use: Type.Record(Type.String(), Count),
  /** Requests per second it received for the deployment lately (its share's weight). */
  rate: Type.Number({ minimum: 0 }),
  at: Type.Number(),
});
export type SlotReport = Static<typeof SlotReport>;

const jobCheck = Compile(InferJob);
const assignmentCheck = Compile(Assignment);
const releaseCheck = Compile(Release);
const reportCheck = Compile(SlotReport);

function parseJson(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** A stream entry's job, or undefined when it is not one (not JSON, or not the shape). */
export function parseJob(text: string | undefined): InferJob | undefined {
  const v = parseJson(text);
  return jobCheck.Check(v) ? v : undefined;
}

/** What a list message held: the items that match, and how many did not. */
export interface Parsed<T> {
  items: T[];
  dropped: number;
}

function parseList<T>(text: string, check: { Check(v: unknown): v is T }): Parsed<T> {
  const v = parseJson(text);
  if (!Array.isArray(v)) return { items: [], dropped: 1 };
  const items: T[] = [];
  for (const x of v) if (check.Check(x)) items.push(x);
  return { items, dropped: v.length - items.length };
}

/** A message on a gateway's reply channel: a JSON array of assignments. */
export function parseAssignments(text: string): Parsed<Assignment> {
  return parseList(text, assignmentCheck);
}

/** A message on a scheduler's channel: a JSON array of releases. */
export function parseReleases(text: string): Parsed<Release> {
  return parseList(text, releaseCheck);
}

/** A gateway's slot report, or undefined when it is not one. */
export function parseSlotReport(text: string | undefined): SlotReport | undefined {
  const v = parseJson(text);
  return reportCheck.Check(v) ? v : undefined;
}
