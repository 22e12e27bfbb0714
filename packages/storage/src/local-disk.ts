/** File bodies under one directory on local disk (local mode, a single-node install). */
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, rename, rm, stat } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { dirname, join, resolve } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { assertKey, BlobNotFound, type BlobStore } from "./blob-store.ts";

export class LocalDiskStore implements BlobStore {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  private path(key: string): string {
    assertKey(key);
    return join(this.root, key);
  }

  async put(key: string, body: Buffer | Readable): Promise<{ bytes: number }> {
    const path = this.path(key);
    await mkdir(dirname(path), { recursive: true });
    // Written beside its place and renamed over it: a reader never sees half a body.
    const tmp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
    let bytes = 0;
    const count = new Transform({
      transform(chunk: Buffer, _enc, done) {
        bytes += chunk.length;
        done(null, chunk);
      },
    });
    try {
      await pipeline(Buffer.isBuffer(body) ? Readable.from([body]) : body, count, createWriteStream(tmp));
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    return { bytes };
  }

  async get(key: string): Promise<Readable> {
    const path = this.path(key);
    try {
      if (!(await stat(path)).isFile()) throw new BlobNotFound(key);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new BlobNotFound(key);
      throw err;
    }
    return createReadStream(path);
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }
}
