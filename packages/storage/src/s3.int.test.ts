/** The S3 backend against a real S3-compatible server (gofakes3, tools/s3): the same contract as the local disk. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startS3, type TestS3 } from "@infera/testkit";
import { buffer } from "node:stream/consumers";
import { BlobNotFound } from "./blob-store.ts";
import { blobStoreContract } from "./contract.ts";
import { blobStoreFromEnv, storageConfig } from "./from-env.ts";
import { S3Store } from "./s3.ts";

let s3: TestS3;
const stores: S3Store[] = [];

beforeAll(async () => {
  s3 = await startS3();
}, 120_000);

afterAll(async () => {
  for (const s of stores) s.destroy();
  await s3?.stop();
});

function store(prefix?: string): S3Store {
  const s = new S3Store({
    bucket: s3.bucket,
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    prefix,
  });
  stores.push(s);
  return s;
}

describe("S3Store", () => {
  blobStoreContract(() => store());

  it("is what blobStoreFromEnv makes from the S3_* variables, and it reaches the same bucket", async () => {
    const fromEnv = blobStoreFromEnv(s3.env);
    expect(fromEnv).toBeInstanceOf(S3Store);
    stores.push(fromEnv as S3Store);
    await fromEnv.put("files/env/one", Buffer.from("via env"));
    expect((await buffer(await store().get("files/env/one"))).toString()).toBe("via env");
  });

  it("keeps keys under S3_PREFIX apart from the same keys without it", async () => {
    await store("tenant-a/").put("files/same", Buffer.from("a"));
    await expect(store().get("files/same")).rejects.toBeInstanceOf(BlobNotFound);
    expect((await buffer(await store("tenant-a/").get("files/same"))).toString()).toBe("a");
  });

  it("a bucket that does not exist is an error, not BlobNotFound", async () => {
    const s = new S3Store({ bucket: "no-such-bucket", endpoint: s3.endpoint, credentials: { accessKeyId: "x", secretAccessKey: "y" } });
    stores.push(s);
    await expect(s.put("files/x", Buffer.from("x"))).rejects.toThrow();
    await expect(s.get("files/x")).rejects.not.toBeInstanceOf(BlobNotFound);
  });
});

describe("storageConfig", () => {
  it("defaults to the local disk under LOCAL_DATA_DIR, and names the variable at fault", () => {
    expect(storageConfig({})).toEqual({ backend: "local", dir: ".data/files" });
    expect(storageConfig({ LOCAL_DATA_DIR: "/var/infera" })).toEqual({ backend: "local", dir: "/var/infera/files" });
    expect(() => storageConfig({ STORAGE_BACKEND: "gcs" })).toThrow(/STORAGE_BACKEND must be one of local, s3/);
    expect(() => storageConfig({ STORAGE_BACKEND: "s3" })).toThrow(/S3_BUCKET is required/);
    expect(() => storageConfig({ STORAGE_BACKEND: "s3", S3_BUCKET: "b", S3_ACCESS_KEY_ID: "k" })).toThrow(/S3_SECRET_ACCESS_KEY go together/);
    expect(() => storageConfig({ STORAGE_BACKEND: "s3", S3_BUCKET: "b", S3_ENDPOINT: "minio:9000" })).toThrow(/S3_ENDPOINT must be an http/);
    expect(storageConfig({ STORAGE_BACKEND: "s3", S3_BUCKET: "b", S3_ENDPOINT: "http://minio:9000" })).toMatchObject({
      forcePathStyle: true,
      region: "us-east-1",
    });
    expect(storageConfig({ STORAGE_BACKEND: "s3", S3_BUCKET: "b" })).toMatchObject({ forcePathStyle: false, endpoint: undefined, credentials: undefined });
  });
});
