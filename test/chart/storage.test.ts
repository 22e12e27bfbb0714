/**
 * Where file bodies live, as the chart sets it: the gateway and the scheduler get the same
 * store (both read and write files: uploads, batch inputs and outputs), in variables the
 * services' own loader (@infera/storage's storageConfig) accepts; S3 keys come from the
 * operator's Secret; settings that would split files between pods are refused at render.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { helmBinary } from "@infera/testkit";
import { storageConfig } from "@infera/storage";
import { CHART, type Container, find, podOf, render } from "./render.ts";

type Volume = { name: string; emptyDir?: object; persistentVolumeClaim?: { claimName: string } };

function platformPods(args: string[]) {
  const objs = render(args);
  return ["infera-gateway", "infera-scheduler"].map((name) => {
    const pod = podOf(find(objs, "Deployment", name));
    const c = pod.containers[0] as Container & { volumeMounts?: { name: string; mountPath: string }[] };
    const env = Object.fromEntries((c.env ?? []).filter((e) => /^(STORAGE|S3)_/.test(e.name)).map((e) => [e.name, e.value ?? e.valueFrom?.secretKeyRef]));
    return { name, env, mounts: c.volumeMounts ?? [], volumes: (pod.volumes ?? []) as Volume[] };
  });
}

/** The variables as a process would see them: a Secret's value stands in as `<secret>/<key>`. */
const asProcessEnv = (env: Record<string, unknown>) =>
  Object.fromEntries(
    Object.entries(env).map(([k, v]) => [k, typeof v === "string" ? v : `${(v as { name: string }).name}/${(v as { key: string }).key}`]),
  ) as Record<string, string>;

describe("the chart's file storage", () => {
  it("by default (a trial): a local directory on each pod's own volume, the same path in gateway and scheduler", () => {
    for (const p of platformPods([])) {
      expect(p.env.STORAGE_BACKEND, p.name).toBe("local");
      expect(p.env.STORAGE_DIR, p.name).toBe("/var/lib/infera/files");
      expect(p.mounts).toContainEqual({ name: "files", mountPath: "/var/lib/infera/files" });
      expect(p.volumes.find((v) => v.name === "files")).toEqual({ name: "files", emptyDir: {} });
      expect(storageConfig(asProcessEnv(p.env))).toEqual({ backend: "local", dir: "/var/lib/infera/files" });
    }
  });

  it("local with a ReadWriteMany claim: both mount it, and several gateways may share it", () => {
    for (const p of platformPods(["--set", "storage.local.existingClaim=infera-files", "--set", "gateway.replicas=3"])) {
      expect(p.volumes.find((v) => v.name === "files")).toEqual({ name: "files", persistentVolumeClaim: { claimName: "infera-files" } });
    }
  });

  it("s3: the bucket, endpoint and path style in both, the access keys from the operator's Secret, no files volume", () => {
    const pods = platformPods([
      "--set",
      "storage.backend=s3",
      "--set",
      "storage.s3.bucket=infera-files",
      "--set",
      "storage.s3.endpoint=http://minio.storage:9000",
      "--set",
      "storage.s3.prefix=prod/",
      "--set",
      "storage.s3.existingSecret=infera-s3",
    ]);
    for (const p of pods) {
      expect(p.env, p.name).toMatchObject({
        STORAGE_BACKEND: "s3",
        S3_BUCKET: "infera-files",
        S3_REGION: "us-east-1",
        S3_ENDPOINT: "http://minio.storage:9000",
        S3_PREFIX: "prod/",
        S3_ACCESS_KEY_ID: { name: "infera-s3", key: "access-key-id" },
        S3_SECRET_ACCESS_KEY: { name: "infera-s3", key: "secret-access-key" },
      });
      expect(p.env.STORAGE_DIR).toBeUndefined();
      expect(p.volumes.map((v) => v.name)).not.toContain("files");
      expect(storageConfig(asProcessEnv(p.env))).toMatchObject({
        backend: "s3",
        bucket: "infera-files",
        endpoint: "http://minio.storage:9000",
        forcePathStyle: true,
        prefix: "prod/",
        credentials: { accessKeyId: "infera-s3/access-key-id", secretAccessKey: "infera-s3/secret-access-key" },
      });
    }
  });

  it("s3 without a Secret: no key variables (IRSA or an instance profile gives them); the production profile uses a bucket and its Secret", () => {
    for (const p of platformPods(["--set", "storage.backend=s3", "--set", "storage.s3.bucket=infera-files"])) {
      expect(p.env.S3_ACCESS_KEY_ID).toBeUndefined();
      expect(storageConfig(asProcessEnv(p.env))).toMatchObject({ backend: "s3", credentials: undefined, forcePathStyle: false });
    }
    for (const p of platformPods(["-f", `${CHART}/values-gpu-production.yaml`])) {
      expect(p.env).toMatchObject({ STORAGE_BACKEND: "s3", S3_BUCKET: "infera-files", S3_ACCESS_KEY_ID: { name: "infera-s3", key: "access-key-id" } });
    }
  });

  it("refuses, naming what to set: s3 without a bucket, a pod-local directory under several gateways or schedulers", () => {
    const refused = (...set: string[]) => {
      const r = spawnSync(helmBinary(), ["template", "infera", CHART, ...set.flatMap((s) => ["--set", s])], { encoding: "utf8" });
      expect(r.status).not.toBe(0);
      return r.stderr;
    };
    expect(refused("storage.backend=s3")).toContain("storage.backend=s3 needs storage.s3.bucket");
    for (const s of ["gateway.replicas=2", "gateway.autoscaling.enabled=true", "scheduler.replicas=2"]) {
      expect(refused(s), s).toContain("storage.backend=local without storage.local.existingClaim gives each pod its own files");
    }
    expect(refused("storage.backend=gcs")).toContain("/storage/backend': value must be one of 'local', 's3'");
  });
});
