import { describe, expect, it } from "vitest";
import { type InferJob, parseAssignments, parseJob, parseReleases } from "./messages.ts";

const job: InferJob = {
  requestId: "req-1",
  gatewayId: "gw-1",
  tenantId: "t1",
  keyId: "k1",
  endpoint: "chat",
  prefixHashes: ["a.b"],
  estimatedTokens: 120,
  promptTokens: 20,
  deadline: 2_000,
  enqueuedAt: 1_000,
  priority: 5,
  attempt: 0,
};

describe("queue messages", () => {
  it("reads a job as the gateway wrote it, with fields a newer gateway may add", () => {
    expect(parseJob(JSON.stringify(job))).toEqual(job);
    expect(parseJob(JSON.stringify({ ...job, excludeReplicas: ["r1"], extra: true }))).toMatchObject({ excludeReplicas: ["r1"] });
  });

  it("refuses an entry that is not a job: not JSON, a field missing or of the wrong type, an unknown endpoint", () => {
    expect(parseJob(undefined)).toBeUndefined();
    expect(parseJob("{")).toBeUndefined();
    const { tenantId: _, ...noTenant } = job;
    expect(parseJob(JSON.stringify(noTenant))).toBeUndefined();
    expect(parseJob(JSON.stringify({ ...job, estimatedTokens: "120" }))).toBeUndefined();
    expect(parseJob(JSON.stringify({ ...job, endpoint: "audio" }))).toBeUndefined();
    expect(parseJob(JSON.stringify({ ...job, priority: -1 }))).toBeUndefined();
  });

  it("keeps the assignments of a reply that match and counts the ones that do not", () => {
    const assigned = { type: "assigned", requestId: "a", replicaId: "r1", address: "h:1", queuedMs: 3, schedulerId: "s1", deploymentId: "d1" };
    const rejected = { type: "rejected", requestId: "b", code: "unavailable", message: "no replica", retryAfterS: 5 };
    const bad = [{ type: "assigned", requestId: "c" }, { type: "rejected", requestId: "d", code: "teapot", message: "" }, null];
    expect(parseAssignments(JSON.stringify([assigned, rejected, ...bad]))).toEqual({ items: [assigned, rejected], dropped: 3 });
    expect(parseAssignments("not json")).toEqual({ items: [], dropped: 1 });
    expect(parseAssignments(JSON.stringify(assigned))).toEqual({ items: [], dropped: 1 });
  });

  it("reads releases with and without usage", () => {
    const plain = { deploymentId: "d1", replicaId: "r1", count: 2, failed: false };
    const used = { ...plain, usage: [{ tenantId: "t1", estimatedTokens: 10, promptTokens: 4, completionTokens: 9 }] };
    expect(parseReleases(JSON.stringify([plain, used, { ...plain, count: -1 }, { ...plain, failed: "no" }]))).toEqual({ items: [plain, used], dropped: 2 });
  });
});
