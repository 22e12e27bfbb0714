/**
 * The Files API with STORAGE_BACKEND=s3 (a cluster's setting), against a real S3-compatible
 * server (gofakes3, tools/s3): an upload's body lands in the bucket under the file's key and
 * nowhere else, reads back through /content, and leaves the bucket on delete; a refused
 * upload leaves nothing there.
 */
import { buffer } from "node:stream/consumers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@infera/core";
import { createDb, seedCatalog, selectCatalog } from "@infera/registry";
import { BlobNotFound, S3Store } from "@infera/storage";
import { createTestDatabase, flushPrefix, startS3, TEST_REDIS_URL, testRedisPrefix, type TestDatabase, type TestS3 } from "@infera/testkit";
import { startGateway, type RunningGateway } from "./app.ts";
import { loadConfig } from "./config.ts";

const MODEL = "meta-llama/Meta-Llama-3-8B-Instruct";
const ADMIN = `sk-admin-${"s3".repeat(16)}`;
let db: TestDatabase;
let s3: TestS3;
let bucket: S3Store;
let gateway: RunningGateway;
let base = "";
const prefix = testRedisPrefix("files-s3");

beforeAll(async () => {
  [db, s3] = await Promise.all([createTestDatabase("files-s3"), startS3()]);
  const k = createDb(db.url, { max: 2 });
  await seedCatalog(k, selectCatalog([MODEL]));
  await k.destroy();
  const config = loadConfig({
    DATABASE_URL: db.url,
    REDIS_URL: TEST_REDIS_URL,
    REDIS_PREFIX: prefix,
    PORT: "0",
    HOST: "127.0.0.1",
    BOOTSTRAP_ADMIN_KEY: ADMIN,
    ...s3.env,
  });
  gateway = await startGateway(config, createLogger({ service: "test", level: "silent" }));
  base = `http://127.0.0.1:${gateway.port}/v1/openai`;
  bucket = new S3Store({ bucket: s3.bucket, endpoint: s3.endpoint, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
}, 120_000);

afterAll(async () => {
  bucket?.destroy();
  await gateway?.stop();
  await s3?.stop();
  await flushPrefix(prefix);
  await db?.drop();
});

const line = (id: string) =>
  JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: MODEL, messages: [{ role: "user", content: id }] } });
const auth = { authorization: `Bearer ${ADMIN}` };

async function upload(text: string) {
  const form = new FormData();
  form.set("purpose", "batch");
  form.set("file", new Blob([text]), "in.jsonl");
  const r = await fetch(`${base}/files`, { method: "POST", headers: auth, body: form });
  return { status: r.status, json: (await r.json()) as { id: string; bytes: number; error?: { message: string } } };
}

describe("files on S3", () => {
  it("an upload's body is in the bucket under the file's key, read back by /content, gone after delete", async () => {
    // Several S3 parts' worth would need a larger FILES_MAX_BYTES; the multi-part path is the storage contract's (s3.int.test.ts).
    const text = `${Array.from({ length: 500 }, (_, i) => line(`l${i}`)).join("\n")}\n`;
    const f = await upload(text);
    expect(f.status).toBe(200);
    expect(f.json.bytes).toBe(Buffer.byteLength(text));
    const tenant = (await (await fetch(`${base.replace("/v1/openai", "")}/admin/tenants`, { headers: auth })).json()) as {
      data: { id: string; name: string }[];
    };
    const admin = tenant.data.find((t) => t.name === "admin")!;
    const key = `files/${admin.id}/${f.json.id}`;
    expect((await buffer(await bucket.get(key))).toString()).toBe(text);

    const content = await fetch(`${base}/files/${f.json.id}/content`, { headers: auth });
    expect(content.status).toBe(200);
    expect(await content.text()).toBe(text);

    expect((await fetch(`${base}/files/${f.json.id}`, { method: "DELETE", headers: auth })).status).toBe(200);
    await expect(bucket.get(key)).rejects.toBeInstanceOf(BlobNotFound);
    expect((await fetch(`${base}/files/${f.json.id}/content`, { headers: auth })).status).toBe(404);
  });

  it("a refused upload leaves nothing in the bucket", async () => {
    const bad = await upload(`${line("a")}\n${line("a")}\n`);
    expect(bad.status).toBe(400);
    expect(bad.json.error?.message).toBe('line 2: duplicate custom_id "a" (first on line 1)');
    const unknown = await upload(`${line("a")}\n${line("b").replace(MODEL, "no/such-model")}\n`);
    expect(unknown.json.error?.message).toMatch(/^line 2: The model 'no\/such-model' does not exist/);
    const list = (await (await fetch(`${base}/files`, { headers: auth })).json()) as { data: unknown[] };
    expect(list.data).toEqual([]);
    // The bucket's own listing (gofakes3 takes an unsigned request): no object, no upload left open.
    const objects = await (await fetch(`${s3.endpoint}/${s3.bucket}?list-type=2`)).text();
    expect(objects).toContain("<ListBucketResult");
    expect(objects).not.toContain("<Key>");
    expect(await (await fetch(`${s3.endpoint}/${s3.bucket}?uploads`)).text()).not.toContain("<UploadId>");
  });
});
