import { describe, expect } from "vitest";
import type { Kysely } from "kysely";
import { test } from "@infera/testkit/fixtures";
import { createFile, createTenant, deleteFile, expiredFiles, getFile, listFiles, markFilesDeleted, type DB } from "./index.ts";

let db: Kysely<DB>;

test.beforeAll(({ database }) => {
  db = database.db;
});

const file = (tenantId: string, at: number, extra: Partial<Parameters<typeof createFile>[1]> = {}) =>
  createFile(db, {
    tenantId,
    purpose: "batch",
    filename: `in-${at}.jsonl`,
    bytes: 10 * at,
    lineCount: at,
    batchEndpoint: "/v1/chat/completions",
    createdAt: new Date(1_800_000_000_000 + at * 1000),
    ...extra,
  });

describe("files", () => {
  test("a file reads back as written, under OpenAI's id shape, to its tenant only", async () => {
    const a = await createTenant(db, `a-${Math.random()}`);
    const b = await createTenant(db, `b-${Math.random()}`);
    const f = await file(a.id, 3);
    expect(f.id).toMatch(/^file-[A-Za-z0-9]{24}$/);
    expect(f.storageKey).toBe(`files/${a.id}/${f.id}`);
    expect(await getFile(db, a.id, f.id)).toEqual(f);
    expect(f).toMatchObject({ bytes: 30, lineCount: 3, purpose: "batch", status: "processed", batchEndpoint: "/v1/chat/completions", expiresAt: null });
    expect(await getFile(db, b.id, f.id)).toBeUndefined();
    expect(await deleteFile(db, b.id, f.id)).toBeUndefined();
    expect((await deleteFile(db, a.id, f.id))?.id).toBe(f.id);
    expect(await getFile(db, a.id, f.id)).toBeUndefined();
    expect(await deleteFile(db, a.id, f.id)).toBeUndefined();
  });

  test("lists page by creation time both ways, filter by purpose, and skip deleted and expired files", async () => {
    const t = await createTenant(db, `t-${Math.random()}`);
    const ids: string[] = [];
    for (let i = 1; i <= 5; i++) ids.push((await file(t.id, i)).id);
    const out = await file(t.id, 6, { purpose: "batch_output", batchEndpoint: null });
    await deleteFile(db, t.id, ids[1]!);
    await file(t.id, 7, { expiresAt: new Date(Date.now() - 1000) });

    const desc1 = await listFiles(db, t.id, { limit: 2, order: "desc" });
    expect(desc1.data.map((f) => f.id)).toEqual([out.id, ids[4]]);
    expect(desc1.hasMore).toBe(true);
    const desc2 = await listFiles(db, t.id, { limit: 10, order: "desc", after: ids[4] });
    expect(desc2.data.map((f) => f.id)).toEqual([ids[3], ids[2], ids[0]]);
    expect(desc2.hasMore).toBe(false);
    const asc = await listFiles(db, t.id, { limit: 2, order: "asc", after: ids[0], purpose: "batch" });
    expect(asc.data.map((f) => f.id)).toEqual([ids[2], ids[3]]);
    expect(asc.hasMore).toBe(true);
    expect((await listFiles(db, t.id, { limit: 10, order: "asc", purpose: "batch_output" })).data.map((f) => f.id)).toEqual([out.id]);
  });

  test("expired files are found for the expiry chore and marked deleted once", async () => {
    const t = await createTenant(db, `e-${Math.random()}`);
    const old = await file(t.id, 1, { expiresAt: new Date(Date.now() - 1000) });
    await file(t.id, 2, { expiresAt: new Date(Date.now() + 60_000) });
    const due = (await expiredFiles(db)).filter((f) => f.tenantId === t.id);
    expect(due.map((f) => f.id)).toEqual([old.id]);
    expect(await markFilesDeleted(db, [old.id])).toBe(1);
    expect(await markFilesDeleted(db, [old.id])).toBe(0);
    expect((await expiredFiles(db)).filter((f) => f.tenantId === t.id)).toEqual([]);
  });
});
