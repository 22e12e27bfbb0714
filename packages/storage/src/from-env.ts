/** The store a process uses, from its environment (the Helm chart's `storage` values set these). */
import { join } from "node:path";
import { bool, ConfigError, oneOf, optionalStr, str } from "@infera/core";
import type { BlobStore } from "./blob-store.ts";
import { LocalDiskStore } from "./local-disk.ts";
import { S3Store, type S3StoreOptions } from "./s3.ts";

export type StorageConfig = { backend: "local"; dir: string } | ({ backend: "s3" } & S3StoreOptions);

/**
 * STORAGE_BACKEND=local (default): STORAGE_DIR, default `<LOCAL_DATA_DIR or .data>/files`.
 * STORAGE_BACKEND=s3: S3_BUCKET (required), S3_ENDPOINT, S3_REGION (us-east-1), S3_ACCESS_KEY_ID
 * and S3_SECRET_ACCESS_KEY (both or neither: neither is the SDK's default chain),
 * S3_FORCE_PATH_STYLE (default true when S3_ENDPOINT is set), S3_PREFIX (keys under it).
 */
export function storageConfig(env: Record<string, string | undefined>): StorageConfig {
  const backend = oneOf(env, "STORAGE_BACKEND", ["local", "s3"], "local");
  if (backend === "local") return { backend, dir: str(env, "STORAGE_DIR", join(env.LOCAL_DATA_DIR || ".data", "files")) };
  const endpoint = optionalStr(env, "S3_ENDPOINT");
  if (endpoint !== undefined && !/^https?:\/\/[^/]/.test(endpoint))
    throw new ConfigError(`S3_ENDPOINT must be an http(s) URL, got ${JSON.stringify(endpoint)}`);
  const accessKeyId = optionalStr(env, "S3_ACCESS_KEY_ID");
  const secretAccessKey = optionalStr(env, "S3_SECRET_ACCESS_KEY");
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw new ConfigError("S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together: set both, or neither");
  }
  return {
    backend,
    bucket: str(env, "S3_BUCKET"),
    endpoint,
    region: str(env, "S3_REGION", "us-east-1"),
    forcePathStyle: bool(env, "S3_FORCE_PATH_STYLE", endpoint !== undefined),
    credentials: accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : undefined,
    prefix: optionalStr(env, "S3_PREFIX"),
  };
}

export function createBlobStore(c: StorageConfig): BlobStore {
  return c.backend === "local" ? new LocalDiskStore(c.dir) : new S3Store(c);
}

/** createBlobStore(storageConfig(env)). */
export function blobStoreFromEnv(env: Record<string, string | undefined> = process.env): BlobStore {
  return createBlobStore(storageConfig(env));
}
