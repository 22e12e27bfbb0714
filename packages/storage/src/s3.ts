/** File bodies in an S3-compatible bucket (clusters: AWS S3, MinIO, Ceph RGW, GCS's S3 API). */
import { DeleteObjectCommand, GetObjectCommand, NoSuchKey, PutObjectCommand, S3Client, S3ServiceException } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { type Readable, Transform } from "node:stream";
import { assertKey, BlobNotFound, type BlobStore } from "./blob-store.ts";

export interface S3StoreOptions {
  bucket: string;
  /** A non-AWS server's URL (`http://minio:9000`); none: AWS for `region`. */
  endpoint?: string;
  region?: string;
  /** Path-style URLs (`endpoint/bucket/key`), which most S3-compatible servers need. */
  forcePathStyle?: boolean;
  /** None: the SDK's default chain (IRSA, instance profile, AWS_* variables). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Keys are stored under this prefix in the bucket (`infera/`). */
  prefix?: string;
}

/** Streamed bodies are sent in parts of this size (S3's minimum is 5 MiB); a body smaller than one part is a single PUT. */
const PART_BYTES = 8 * 1024 * 1024;

export class S3Store implements BlobStore {
  readonly bucket: string;
  private readonly client: S3Client;
  private readonly prefix: string;

  constructor(o: S3StoreOptions) {
    this.bucket = o.bucket;
    this.prefix = o.prefix ?? "";
    this.client = new S3Client({
      region: o.region ?? "us-east-1",
      endpoint: o.endpoint,
      forcePathStyle: o.forcePathStyle ?? o.endpoint !== undefined,
      credentials: o.credentials,
    });
  }

  private key(key: string): string {
    assertKey(key);
    return this.prefix + key;
  }

  async put(key: string, body: Buffer | Readable): Promise<{ bytes: number }> {
    const Key = this.key(key);
    if (Buffer.isBuffer(body)) {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: body, ContentLength: body.length }));
      return { bytes: body.length };
    }
    let bytes = 0;
    const counted = body.pipe(
      new Transform({
        transform(chunk: Buffer, _enc, done) {
          bytes += chunk.length;
          done(null, chunk);
        },
      }),
    );
    body.once("error", (err) => counted.destroy(err));
    // A multipart upload is visible only once completed: readers see the old body or the new one.
    await new Upload({ client: this.client, params: { Bucket: this.bucket, Key, Body: counted }, partSize: PART_BYTES, queueSize: 2 }).done();
    return { bytes };
  }

  async get(key: string): Promise<Readable> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(key) }));
      return r.Body as Readable;
    } catch (err) {
      // Only a missing key: a missing bucket (also a 404) is the deployment's fault, not the file's.
      if (err instanceof NoSuchKey || (err instanceof S3ServiceException && err.name === "NoSuchKey")) throw new BlobNotFound(key);
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(key) }));
  }

  destroy(): void {
    this.client.destroy();
  }
}
