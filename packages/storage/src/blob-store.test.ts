/** One contract, every backend: the local disk here, S3 against a real S3-compatible server (s3.int.test.ts). */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe } from "vitest";
import { LocalDiskStore } from "./local-disk.ts";
import { blobStoreContract } from "./contract.ts";

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "infera-blobs-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("LocalDiskStore", () => {
  blobStoreContract(() => new LocalDiskStore(root), {
    // A failed streamed write leaves nothing behind, not even its temporary file.
    leftovers: async () => (await readdir(root, { recursive: true })).filter((f) => f.endsWith(".tmp")),
  });
});
