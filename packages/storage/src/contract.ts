/** The behaviour every BlobStore backend owes, as tests (run by each backend's test file). */
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { expect, test } from "vitest";
import { BlobNotFound, type BlobStore } from "./blob-store.ts";

export function blobStoreContract(make: () => BlobStore, o: { leftovers?: () => Promise<string[]> } = {}): void {
  const key = (name: string) => `files/ten_test/${name}-${randomBytes(4).toString("hex")}`;

  test("a body put under a key reads back byte for byte, and a second put replaces it", async () => {
    const s = make();
    const k = key("replace");
    expect(await s.put(k, Buffer.from('{"a":1}\n'))).toEqual({ bytes: 8 });
    expect((await buffer(await s.get(k))).toString()).toBe('{"a":1}\n');
    expect(await s.put(k, Buffer.from("second"))).toEqual({ bytes: 6 });
    expect((await buffer(await s.get(k))).toString()).toBe("second");
  });

  test("a streamed multi-megabyte body is stored whole and counted", async () => {
    const s = make();
    const k = key("stream");
    const chunks = Array.from({ length: 24 }, () => randomBytes(512 * 1024)); // 12 MiB in 512 KiB chunks: more than one S3 part
    const whole = Buffer.concat(chunks);
    expect(await s.put(k, Readable.from(chunks))).toEqual({ bytes: whole.length });
    const back = await buffer(await s.get(k));
    expect(back.length).toBe(whole.length);
    expect(back.equals(whole)).toBe(true);
  });

  test("a stream that fails part way stores nothing under the key", async () => {
    const s = make();
    const k = key("broken");
    const broken = Readable.from(
      (async function* () {
        yield randomBytes(64 * 1024);
        throw new Error("client went away");
      })(),
    );
    await expect(s.put(k, broken)).rejects.toThrow("client went away");
    await expect(s.get(k)).rejects.toBeInstanceOf(BlobNotFound);
    if (o.leftovers) expect(await o.leftovers()).toEqual([]);
  });

  test("a missing key is BlobNotFound; delete removes a body and is quiet when there is none", async () => {
    const s = make();
    const k = key("delete");
    await expect(s.get(k)).rejects.toBeInstanceOf(BlobNotFound);
    await s.put(k, Buffer.from("x"));
    await s.delete(k);
    await expect(s.get(k)).rejects.toBeInstanceOf(BlobNotFound);
    await s.delete(k);
  });

  test("keys that climb out of the store or are not plain paths are refused", async () => {
    const s = make();
    for (const bad of ["../etc/passwd", "/abs", "a//b", "a/./b", "", "a/b c", "x.tmp"]) {
      await expect(s.put(bad, Buffer.from("x")), bad).rejects.toThrow(/Invalid blob key/);
      await expect(s.get(bad), bad).rejects.toThrow(/Invalid blob key/);
    }
  });
}
