/**
 * Where file bodies live (uploaded batch inputs, batch output and error files): never in
 * Postgres or Redis. One narrow interface; a local-disk backend for local mode and an
 * S3-compatible one for clusters.
 */
import type { Readable } from "node:stream";

export interface BlobStore {
  /** Stores the whole body under `key`, replacing what was there; readers see the old body or the new one, never a part. */
  put(key: string, body: Buffer | Readable): Promise<{ bytes: number }>;
  /** The body under `key`; throws BlobNotFound when there is none. */
  get(key: string): Promise<Readable>;
  /** Removes `key`; an absent key is no error. */
  delete(key: string): Promise<void>;
}

export class BlobNotFound extends Error {
  readonly key: string;
  constructor(key: string) {
    super(`No blob stored under '${key}'.`);
    this.name = "BlobNotFound";
    this.key = key;
  }
}

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** A key is a relative path of plain segments (`files/ten_x/file-abc`): no `..`, no leading `/`, nothing a shell or URL escapes. */
export function assertKey(key: string): void {
  const parts = key.split("/");
  if (key.length > 1024 || parts.some((p) => !SEGMENT.test(p) || p.endsWith(".tmp"))) {
    throw new Error(`Invalid blob key '${key}': segments of letters, digits, '.', '_' and '-', separated by '/'.`);
  }
}
