/**
 * Batch orchestration against real Postgres, Redis (BullMQ) and a local-disk blob store: the
 * scheduler's chores worker as it runs in the scheduler, and a stand-in for the gateways'
 * `batch-lines` worker that answers each line by recording it (what a gateway does after the
 * line's inference), so what is tested is the orchestration: fan-out, exactly-once recording,
 * the files, expiry, cancel, and recovery after Redis loses every job.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { text } from "node:stream/consumers";
import { afterAll, describe, expect } from "vitest";
import type { Kysely } from "kysely";
import { createLogger, type Stoppable } from "@infera/core";
import { JobQueues, type JobWorker, startJobWorker } from "@infera/jobs";
import {
  batchLineRequestId,
  createApiKey,
  createBatch,
  createFile,
  createTenant,
  type DB,
  fileStorageKey,
  findBatch,
  getFile,
  newFileId,
  recordLine,
  requestCancel,
  setBatchStatus,
} from "@infera/registry";
import { LocalDiskStore } from "@infera/storage";
import { flushPrefix, waitFor } from "@infera/testkit";
import { test } from "@infera/testkit/fixtures";
import { expireFiles, startChores } from "./chores.ts";

const logger = createLogger({ service: "test", level: process.env.TEST_LOG_LEVEL ?? "silent" });
const dir = mkdtempSync(join(tmpdir(), "batches-int-"));
const blobs = new LocalDiskStore(dir);
const CHUNK = 10;

let db: Kysely<DB>;
let prefix: string;
let chores: Stoppable;
let jobs: JobQueues;
const connection = () => ({ redisUrl: process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379", prefix });
/** Lines the stand-in gateway answered (each recordLine that inserted). */
const recorded: string[] = [];
let lineWorker: JobWorker | undefined;

/** The stand-in gateway: answers each line of a chunk (a custom id ending in "-bad" fails with a 400), then asks to finalize. */
function startLineWorker(delayMs = 0): JobWorker {
  return startJobWorker(
    connection(),
    "batch-lines",
    {
      "batch.lines": async ({ batchId, from, to }) => {
        const b = await findBatch(db, batchId);
        if (b?.status !== "in_progress") return;
        for (let n = from; n < to; n++) {
          if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
          const customId = `req-${n}${n % 7 === 3 ? "-bad" : ""}`;
          const bad = customId.endsWith("-bad");
          const ok = await recordLine(db, {
            batchId,
            lineNo: n,
            customId,
            status: bad ? "failed" : "completed",
            statusCode: bad ? 400 : 200,
            requestId: batchLineRequestId(batchId, n),
            response: bad ? { error: { message: "refused", type: "invalid_request_error", param: null, code: null } } : { answer: n },
            error: null,
          });
          if (ok) recorded.push(`${batchId}:${n}`);
        }
        const after = await findBatch(db, batchId);
        if (after && after.completed + after.failed >= after.total) await jobs.add("batch.finalize", { batchId }, { jobId: `finalize-${batchId}` });
      },
    },
    { concurrency: 2, logger },
  );
}

let tenantId: string;
let keyId: string;

async function newBatch(lines: number, expiresAt = new Date(Date.now() + 86_400_000)) {
  const id = newFileId();
  const body = Array.from({ length: lines }, (_, n) =>
    JSON.stringify({ custom_id: `req-${n}${n % 7 === 3 ? "-bad" : ""}`, method: "POST", url: "/v1/chat/completions", body: { model: "m", messages: [] } }),
  ).join("\n");
  const key = fileStorageKey(tenantId, id);
  const { bytes } = await blobs.put(key, Buffer.from(`${body}\n`));
  await createFile(db, {
    id,
    tenantId,
    purpose: "batch",
    filename: "in.jsonl",
    bytes,
    lineCount: lines,
    batchEndpoint: "/v1/chat/completions",
    storageKey: key,
  });
  return createBatch(db, {
    tenantId,
    keyId,
    endpoint: "/v1/chat/completions",
    inputFileId: id,
    completionWindow: "24h",
    total: lines,
    metadata: null,
    expiresAt,
  });
}

async function fileLines(fileId: string | null): Promise<Record<string, unknown>[]> {
  if (!fileId) return [];
  const f = await getFile(db, tenantId, fileId);
  const body = await text(await blobs.get(f!.storageKey));
  return body
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** A batch of `lines` started, once it is in progress. */
async function startedBatch(lines: number, expiresAt?: Date) {
  const b = await newBatch(lines, expiresAt);
  await jobs.add("batch.start", { batchId: b.id }, { jobId: `start-${b.id}` });
  await waitFor("in progress", async () => (await findBatch(db, b.id))?.status === "in_progress", { timeoutMs: 10_000 });
  return b;
}

const settled = (batchId: string, status: string) =>
  waitFor(`batch ${status}`, async () => (await findBatch(db, batchId))?.status === status, { timeoutMs: 30_000, intervalMs: 100 });

test.beforeAll(async ({ database, redisPrefix }) => {
  db = database.db;
  prefix = redisPrefix;
  const t = await createTenant(db, `t-${Math.random()}`);
  tenantId = t.id;
  keyId = (await createApiKey(db, { tenantId, name: "k", scopes: ["inference"] })).key.id;
  jobs = new JobQueues(connection(), logger);
  chores = await startChores({ db, blobs, connection: connection(), logger, chunkLines: CHUNK, reconcileMs: 300, responsesPurgeMs: 60_000 });
});

afterAll(async () => {
  await lineWorker?.stop();
  await chores?.stop();
  await jobs?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("batch orchestration on BullMQ", () => {
  test("a batch runs validating → in_progress → completed: one answer per line, failures in the error file, counts from the lines", async () => {
    lineWorker ??= startLineWorker();
    const b = await newBatch(45);
    await jobs.add("batch.start", { batchId: b.id }, { jobId: `start-${b.id}` });
    await settled(b.id, "completed");
    const done = (await findBatch(db, b.id))!;
    expect(done.in_progress_at).not.toBeNull();
    expect(done.finalizing_at).not.toBeNull();
    expect(done.completed_at).not.toBeNull();
    const bad = Array.from({ length: 45 }, (_, n) => n).filter((n) => n % 7 === 3);
    expect({ completed: done.completed, failed: done.failed }).toEqual({ completed: 45 - bad.length, failed: bad.length });
    const out = await fileLines(done.output_file_id);
    const err = await fileLines(done.error_file_id);
    expect(out.map((l) => l.custom_id).sort()).toEqual(
      Array.from({ length: 45 }, (_, n) => n)
        .filter((n) => n % 7 !== 3)
        .map((n) => `req-${n}`)
        .sort(),
    );
    expect(out[0]).toMatchObject({
      id: expect.stringMatching(/^batch_req_/),
      response: { status_code: 200, request_id: expect.stringMatching(/^req_[0-9a-f]{24}$/) },
      error: null,
    });
    expect(err.map((l) => l.custom_id)).toEqual(bad.map((n) => `req-${n}-bad`));
    expect(err[0]).toMatchObject({ response: { status_code: 400, body: { error: { message: "refused" } } } });
    expect((await getFile(db, tenantId, done.output_file_id!))?.purpose).toBe("batch_output");
  });

  test("a line is recorded once, and only while its batch is in progress", async () => {
    const b = await newBatch(3);
    const line = { batchId: b.id, lineNo: 0, customId: "req-0", status: "completed" as const, statusCode: 200, requestId: "req_x", response: {}, error: null };
    expect(await recordLine(db, line)).toBe(false); // validating
    await setBatchStatus(db, b.id, "in_progress");
    expect(await recordLine(db, line)).toBe(true);
    expect(await recordLine(db, { ...line, response: { again: true } })).toBe(false);
    await requestCancel(db, tenantId, b.id);
    expect(await recordLine(db, { ...line, lineNo: 1 })).toBe(false);
    expect((await findBatch(db, b.id))?.completed).toBe(1);
  });

  test("Redis losing every job mid-batch loses no line and repeats none: the sweep re-creates the chunks still owed", async () => {
    await lineWorker?.stop();
    lineWorker = startLineWorker(15);
    const b = await newBatch(80);
    await jobs.add("batch.start", { batchId: b.id }, { jobId: `start-${b.id}` });
    await waitFor("some lines answered", async () => ((await findBatch(db, b.id))?.completed ?? 0) >= 15, { timeoutMs: 30_000, intervalMs: 50 });
    await lineWorker.stop();
    await flushPrefix(prefix);
    lineWorker = startLineWorker();
    await settled(b.id, "completed");
    const done = (await findBatch(db, b.id))!;
    expect(done.completed + done.failed).toBe(80);
    const ids = [...(await fileLines(done.output_file_id)), ...(await fileLines(done.error_file_id))].map((l) => l.custom_id);
    expect(ids).toHaveLength(80);
    expect(new Set(ids).size).toBe(80);
    expect(recorded.filter((r) => r.startsWith(`${b.id}:`))).toHaveLength(80);
  });

  test("a batch past its window expires: answered lines in the output, the rest batch_expired in the error file", async () => {
    await lineWorker?.stop();
    lineWorker = undefined;
    const b = await startedBatch(12, new Date(Date.now() + 1500));
    await recordLine(db, {
      batchId: b.id,
      lineNo: 0,
      customId: "req-0",
      status: "completed",
      statusCode: 200,
      requestId: "req_y",
      response: { a: 1 },
      error: null,
    });
    await settled(b.id, "expired");
    const done = (await findBatch(db, b.id))!;
    expect(done.expired_at).not.toBeNull();
    expect((await fileLines(done.output_file_id)).map((l) => l.custom_id)).toEqual(["req-0"]);
    const err = await fileLines(done.error_file_id);
    expect(err).toHaveLength(11);
    expect(err[0]).toMatchObject({ custom_id: "req-1", response: null, error: { code: "batch_expired" } });
  });

  test("a cancelled batch ends cancelled with what was answered; the rest are batch_cancelled", async () => {
    const b = await startedBatch(12);
    await recordLine(db, {
      batchId: b.id,
      lineNo: 5,
      customId: "req-5",
      status: "completed",
      statusCode: 200,
      requestId: "req_z",
      response: { a: 1 },
      error: null,
    });
    expect((await requestCancel(db, tenantId, b.id))?.status).toBe("cancelling");
    await jobs.add("batch.cancel", { batchId: b.id }, { jobId: `cancel-${b.id}` });
    await settled(b.id, "cancelled");
    const done = (await findBatch(db, b.id))!;
    expect(done.cancelling_at).not.toBeNull();
    expect((await fileLines(done.output_file_id)).map((l) => l.custom_id)).toEqual(["req-5"]);
    expect((await fileLines(done.error_file_id)).every((l) => (l.error as { code: string }).code === "batch_cancelled")).toBe(true);
    expect({ completed: done.completed, failed: done.failed }).toEqual({ completed: 1, failed: 11 });
  });

  test("files past their expires_at lose their body and are marked deleted; the rest stay", async () => {
    const file = async (expiresAt: Date | null) => {
      const id = newFileId();
      const key = fileStorageKey(tenantId, id);
      const { bytes } = await blobs.put(key, Buffer.from("{}\n"));
      await createFile(db, { id, tenantId, purpose: "batch_output", filename: "o.jsonl", bytes, lineCount: 1, storageKey: key, expiresAt });
      return { id, key };
    };
    const now = new Date();
    const past = await file(new Date(now.getTime() - 1000));
    const future = await file(new Date(now.getTime() + 86_400_000));
    const forever = await file(null);
    expect(await expireFiles(db, blobs, now)).toBeGreaterThanOrEqual(1);
    const deleted = await db.selectFrom("files").select(["id", "deleted_at"]).where("id", "in", [past.id, future.id, forever.id]).execute();
    expect(Object.fromEntries(deleted.map((r) => [r.id, r.deleted_at !== null]))).toEqual({ [past.id]: true, [future.id]: false, [forever.id]: false });
    await expect(blobs.get(past.key)).rejects.toThrow();
    expect(await text(await blobs.get(future.key))).toBe("{}\n");
    expect(await expireFiles(db, blobs, now)).toBe(0);
  });
});
