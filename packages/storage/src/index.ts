export { type BlobStore, BlobNotFound } from "./blob-store.ts";
export { LocalDiskStore } from "./local-disk.ts";
export { S3Store, type S3StoreOptions } from "./s3.ts";
export { blobStoreFromEnv, createBlobStore, storageConfig, type StorageConfig } from "./from-env.ts";
