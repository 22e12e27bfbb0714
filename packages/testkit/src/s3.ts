/**
 * A real S3-compatible server for a test: gofakes3 (tools/s3, built once per machine by
 * tools/s3/build.sh from the Go module proxy), in memory, on a free port of 127.0.0.1, with
 * one bucket made at start. `env` is what a platform process needs to use it
 * (STORAGE_BACKEND=s3 and the S3_* variables); `stop()` leaves nothing running.
 */
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stopChild } from "./processes.ts";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

export interface TestS3 {
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** STORAGE_BACKEND=s3 and the S3_* variables for a platform process. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

let binary: string | undefined;

/** The server's binary (built on first use on a machine; the build's errors fail the caller). */
export function s3Binary(): string {
  binary ??= execFileSync("bash", [join(ROOT, "tools/s3/build.sh")], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] })
    .trim()
    .split("\n")
    .pop()!;
  return binary;
}

export async function startS3(options: { bucket?: string } = {}): Promise<TestS3> {
  const bucket = options.bucket ?? `infera-test-${randomBytes(4).toString("hex")}`;
  const child = spawn(s3Binary(), ["-addr", "127.0.0.1:0", "-bucket", bucket], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const endpoint = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gofakes3 did not start in 10 s:\n${out}`)), 10_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`gofakes3 exited (${code}) before it listened:\n${out}`));
    });
  });
  // gofakes3 takes any credentials; the client still signs every request with these, as with a real server.
  const accessKeyId = "infera-test";
  const secretAccessKey = randomBytes(16).toString("hex");
  const region = "us-east-1";
  return {
    endpoint,
    bucket,
    region,
    accessKeyId,
    secretAccessKey,
    env: {
      STORAGE_BACKEND: "s3",
      S3_ENDPOINT: endpoint,
      S3_BUCKET: bucket,
      S3_REGION: region,
      S3_ACCESS_KEY_ID: accessKeyId,
      S3_SECRET_ACCESS_KEY: secretAccessKey,
      S3_FORCE_PATH_STYLE: "true",
    },
    stop: () => stopChild(child),
  };
}
