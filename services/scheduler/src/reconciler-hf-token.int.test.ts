/**
 * The reconciler and Hugging Face tokens, against real Postgres/Redis and a recording
 * driver: for the kubernetes runtime it opens the sealed token (SECRETS_KEY) into
 * `ReplicaSpec.hfToken`; without the key, or with another one, the deployment fails with
 * a reason instead of retrying; the local runtime never gets a token. After a SECRETS_KEY
 * rotation (the old key as SECRETS_KEY_PREVIOUS) tokens sealed under the old key still open
 * and are re-sealed under the new one. The token is never logged.
 */
import { Writable } from "node:stream";
import type { Redis } from "ioredis";
import type { Kysely } from "kysely";
import { describe, expect } from "vitest";
import { createLogger } from "@infera/core";
import { type RedisKeys, redisKeys } from "@infera/contracts";
import {
  createDeployment,
  ensureModelVersion,
  getDeployment,
  getSealedHfToken,
  openSecret,
  putHfToken,
  resealSecrets,
  sealSecret,
  secretsKeyFrom,
  type DB,
} from "@infera/registry";
import { createSchedulerMetrics } from "./metrics.ts";
import { queuedCount, queueKeys } from "@infera/queue";
import { Reconciler } from "./reconciler.ts";
import { ReplicaDirectory } from "./replicas.ts";
import type { ReplicaObservation, ReplicaSpec, RuntimeDriver } from "./runtime/driver.ts";
import { hfTokenSecretName } from "./runtime/kubernetes-manifest.ts";
import { test } from "@infera/testkit/fixtures";

let prefix: string;
let keys: RedisKeys;
const TOKEN = "hf_reconcilerSecret987";
const KEY = secretsKeyFrom("operator secrets key");
let redis: Redis;
let db: Kysely<DB>;

class RecordingDriver implements RuntimeDriver {
  readonly applied: { spec: ReplicaSpec; replicas: number }[] = [];
  readonly removed: string[] = [];
  constructor(readonly name: "local" | "kubernetes") {}
  async apply(spec: ReplicaSpec, replicas: number): Promise<void> {
    this.applied.push({ spec, replicas });
  }
  async observe(): Promise<ReplicaObservation[]> {
    return [];
  }
  async remove(deploymentId: string): Promise<void> {
    this.removed.push(deploymentId);
  }
  async stop(): Promise<void> {}
}

function capturingLogger() {
  let text = "";
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return { logger: createLogger({ service: "test", level: "debug", destination }), text: () => text };
}

async function deploymentWithToken(name: string, sealedUnder: Buffer | undefined): Promise<string> {
  const { versionId } = await ensureModelVersion(db, { tenantId: null, name, task: "chat", version: "1" });
  const d = await createDeployment(db, {
    tenantId: null,
    modelVersionId: versionId,
    config: {
      gpu: "H100-80GB",
      num_gpus: 1,
      max_batch_size: 8,
      engine: "vllm",
      hf: { repo: "meta-llama/Llama-3.1-8B-Instruct", revision: null, has_token: true },
      container_image: null,
      extra_args: [],
      placement: "least-loaded",
    },
    settings: { min_instances: 1, max_instances: 1 },
  });
  if (sealedUnder) await putHfToken(db, d.id, sealSecret(TOKEN, sealedUnder));
  return d.id;
}

function reconcilerWith(driver: RuntimeDriver, secretsKey: Buffer | undefined, schedulerId: string, previousSecretsKey?: Buffer) {
  const log = capturingLogger();
  const reconciler = new Reconciler({
    db,
    redis,
    keys,
    driver,
    directory: new ReplicaDirectory({ redis, keys, heartbeatMs: 200 }),
    metrics: createSchedulerMetrics(),
    logger: log.logger,
    schedulerId,
    intervalMs: 100,
    scaleToZeroIdleMs: 600_000,
    secretsKey,
    previousSecretsKey,
    queued: (id) => queuedCount(redis, queueKeys(prefix), id),
  });
  return { reconciler, logs: log.text };
}

/** One pass as leader; the lease is dropped after so the next test's reconciler can lead. */
async function onePass(driver: RuntimeDriver, secretsKey: Buffer | undefined, passes = 1, previousSecretsKey?: Buffer): Promise<string> {
  const { reconciler, logs } = reconcilerWith(driver, secretsKey, `sched-${Math.random().toString(36).slice(2)}`, previousSecretsKey);
  for (let i = 0; i < passes; i++) await reconciler.kick();
  await reconciler.stop();
  return logs();
}

test.beforeAll(({ database, redis: r, redisPrefix }) => {
  redis = r;
  db = database.db;
  prefix = redisPrefix;
  keys = redisKeys(prefix);
});

describe("reconciler: Hugging Face tokens", () => {
  test("kubernetes: opens the sealed token into the spec, for the deployment's own Secret, and never logs it", async () => {
    const id = await deploymentWithToken("acme/with-token", KEY);
    const driver = new RecordingDriver("kubernetes");
    const logs = await onePass(driver, KEY);
    const mine = driver.applied.filter((a) => a.spec.deploymentId === id);
    expect(mine).toHaveLength(1);
    expect(mine[0]?.spec.hfToken).toBe(TOKEN);
    expect(mine[0]?.spec.hf?.tokenSecretName).toBe(hfTokenSecretName(id));
    expect(hfTokenSecretName(id)).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect((await getDeployment(db, id))?.status).toBe("downloading");
    expect(logs).not.toContain(TOKEN);
  });

  test("kubernetes without SECRETS_KEY: the deployment fails with the reason, once, and is removed (no retry loop)", async () => {
    const id = await deploymentWithToken("acme/no-key", KEY);
    const driver = new RecordingDriver("kubernetes");
    const logs = await onePass(driver, undefined, 3);
    expect(driver.applied.filter((a) => a.spec.deploymentId === id)).toEqual([]);
    const d = await getDeployment(db, id);
    expect(d?.status).toBe("failed");
    expect(d?.fail_reason).toMatch(/Hugging Face token but the scheduler has no SECRETS_KEY/);
    expect(driver.removed.filter((r) => r === id)).toEqual([id]);
    expect(logs).not.toContain(TOKEN);
  });

  test("kubernetes with another key: fails saying the token cannot be opened", async () => {
    const id = await deploymentWithToken("acme/other-key", secretsKeyFrom("a different key"));
    const driver = new RecordingDriver("kubernetes");
    await onePass(driver, KEY);
    expect(driver.applied.filter((a) => a.spec.deploymentId === id)).toEqual([]);
    const d = await getDeployment(db, id);
    expect(d?.status).toBe("failed");
    expect(d?.fail_reason).toMatch(/cannot be opened with the scheduler's SECRETS_KEY/);
  });

  test("kubernetes with has_token but no stored token: fails with the reason", async () => {
    const id = await deploymentWithToken("acme/lost-token", undefined);
    await onePass(new RecordingDriver("kubernetes"), KEY);
    const d = await getDeployment(db, id);
    expect(d?.status).toBe("failed");
    expect(d?.fail_reason).toMatch(/none is stored/);
  });

  test("local runtime: no token is opened or passed, and no key is needed", async () => {
    const id = await deploymentWithToken("acme/local", KEY);
    const driver = new RecordingDriver("local");
    await onePass(driver, undefined);
    const mine = driver.applied.filter((a) => a.spec.deploymentId === id);
    expect(mine).toHaveLength(1);
    expect(mine[0]?.spec.hfToken).toBeUndefined();
    expect((await getDeployment(db, id))?.status).toBe("downloading");
  });

  test("after a SECRETS_KEY rotation (the old key as SECRETS_KEY_PREVIOUS): the token still opens, and is re-sealed under the new key", async () => {
    const NEW = secretsKeyFrom("the rotated key");
    const id = await deploymentWithToken("acme/rotated", KEY);
    const driver = new RecordingDriver("kubernetes");
    const logs = await onePass(driver, NEW, 1, KEY);
    expect(driver.applied.filter((a) => a.spec.deploymentId === id).map((a) => a.spec.hfToken)).toEqual([TOKEN]);
    expect((await getDeployment(db, id))?.status).toBe("downloading");
    const stored = (await getSealedHfToken(db, id))!;
    expect(openSecret(stored, NEW)).toBe(TOKEN);
    expect(() => openSecret(stored, KEY)).toThrow();
    expect(logs).toContain("re-sealed the deployment's Hugging Face token");
    expect(logs).not.toContain(TOKEN);
  });

  test("resealSecrets (the scheduler's start with SECRETS_KEY_PREVIOUS): every token under the old key moves to the new one; one no key opens is left", async () => {
    const OLD = secretsKeyFrom("old key for the sweep");
    const NEW = secretsKeyFrom("new key for the sweep");
    const olds = [await deploymentWithToken("acme/sweep-a", OLD), await deploymentWithToken("acme/sweep-b", OLD)];
    const already = await deploymentWithToken("acme/sweep-new", NEW);
    const lost = await deploymentWithToken("acme/sweep-lost", secretsKeyFrom("a key nobody has"));
    const before = { already: await getSealedHfToken(db, already), lost: await getSealedHfToken(db, lost) };
    const r = await resealSecrets(db, [NEW, OLD]);
    expect(r.resealed).toBeGreaterThanOrEqual(2);
    expect(r.unreadable).toBeGreaterThanOrEqual(1);
    for (const id of olds) expect(openSecret((await getSealedHfToken(db, id))!, NEW)).toBe(TOKEN);
    // Already under the new key: untouched; unreadable: kept as it was (its deployment fails with the reason when started).
    expect(await getSealedHfToken(db, already)).toBe(before.already);
    expect(await getSealedHfToken(db, lost)).toBe(before.lost);
    // A second sweep has nothing of these left to do.
    const again = await resealSecrets(db, [NEW, OLD]);
    for (const id of olds) expect(openSecret((await getSealedHfToken(db, id))!, NEW)).toBe(TOKEN);
    expect(again.resealed).toBe(0);
  });
});
