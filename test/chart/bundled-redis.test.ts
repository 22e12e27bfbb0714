/**
 * The chart's bundled Redis, run here as its pod would run it: the rendered ConfigMap and the
 * StatefulSet's own command (paths moved to a temp folder, a free loopback port), the password
 * from the env its Secret gives. It requires the password and keeps protected mode on; the
 * platform's Redis config, fed the env the chart gives every platform pod (REDIS_URL +
 * REDIS_PASSWORD), connects; a client without the password is refused.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, waitFor } from "@infera/testkit";
import { loadConfig } from "../../services/gateway/src/config.ts";
import { find, podOf, render, type Container } from "./render.ts";

const PASSWORD = "generatedByTheSecretsJob0123456789";
let dir = "";
let port = 0;
let server: ChildProcess | undefined;
let gatewayEnv: Container["env"] = [];

beforeAll(async () => {
  const objs = render();
  const conf = find(objs, "ConfigMap", "infera-redis").data?.["redis.conf"] ?? "";
  const redis = podOf(find(objs, "StatefulSet", "infera-redis")).containers[0]!;
  gatewayEnv = podOf(find(objs, "Deployment", "infera-gateway")).containers[0]!.env;
  // The pod's password env and the gateway's name the same Secret and key.
  const ref = (env: Container["env"], name: string) => env?.find((e) => e.name === name)?.valueFrom?.secretKeyRef;
  expect(ref(redis.env, "REDIS_PASSWORD")).toEqual({ name: "infera-redis-auth", key: "password" });
  expect(ref(redis.env, "REDISCLI_AUTH")).toEqual(ref(redis.env, "REDIS_PASSWORD"));
  expect(ref(gatewayEnv, "REDIS_PASSWORD")).toEqual(ref(redis.env, "REDIS_PASSWORD"));

  dir = mkdtempSync(join(tmpdir(), "infera-chart-redis-"));
  port = await freePort();
  const moved = (s: string) => s.replaceAll("/etc/redis", `${dir}/etc`).replaceAll("/run/redis-auth", `${dir}/auth`).replaceAll("dir /data", `dir ${dir}/data`);
  for (const d of ["etc", "auth", "data"]) mkdirSync(join(dir, d), { recursive: true });
  // The port and address are the pod's (6379 on its own IP); here a free loopback port.
  writeFileSync(join(dir, "etc/redis.conf"), `${moved(conf)}\nport ${port}\nbind 127.0.0.1\n`);
  const argv = [...(redis.command ?? []), ...(redis.args ?? [])].map(moved);
  server = spawn(argv[0]!, argv.slice(1), { env: { PATH: process.env.PATH, REDIS_PASSWORD: PASSWORD }, stdio: "ignore" });
  await waitFor("the chart's redis-server to listen", async () => {
    const r = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, password: PASSWORD });
    r.on("error", () => {});
    try {
      await r.connect();
      return (await r.ping()) === "PONG";
    } catch {
      return false;
    } finally {
      r.disconnect();
    }
  });
});

afterAll(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server!.once("exit", r));
    server.kill("SIGTERM");
    await exited;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("the bundled Redis the chart renders", () => {
  it("refuses a client without the password (NOAUTH) or with another (WRONGPASS)", async () => {
    const bare = new Redis({ port, host: "127.0.0.1", maxRetriesPerRequest: 0, lazyConnect: true });
    bare.on("error", () => {});
    try {
      await expect(bare.xadd("infera:queue:x:5", "*", "job", "{}")).rejects.toThrow(/NOAUTH Authentication required/);
    } finally {
      bare.disconnect();
    }
    let refused: Error | undefined;
    const wrong = new Redis({ port, host: "127.0.0.1", maxRetriesPerRequest: 0, lazyConnect: true, retryStrategy: () => null, password: "not-it" });
    wrong.on("error", (err: Error) => (refused ??= err));
    await wrong.connect().catch(() => {});
    wrong.disconnect();
    expect(refused?.message).toMatch(/WRONGPASS/);
  });

  it("the gateway's config, from the env the chart gives its pod, connects; protected mode is on and nothing is evicted", async () => {
    const env: Record<string, string> = {};
    for (const e of gatewayEnv ?? []) {
      if (e.value !== undefined) env[e.name] = e.value;
      // The kubelet resolves the Secret: here, what the secrets Job put in it.
      if (e.valueFrom?.secretKeyRef?.name === "infera-redis-auth") env[e.name] = PASSWORD;
    }
    expect(env.REDIS_URL).toBe("redis://infera-redis:6379");
    // The Service name resolves to the pod; here, to the loopback port.
    const { redisUrl: url } = loadConfig({
      ...env,
      DATABASE_URL: "postgres://unused",
      REDIS_URL: env.REDIS_URL!.replace("infera-redis:6379", `127.0.0.1:${port}`),
    });
    const r = new Redis(url, { maxRetriesPerRequest: 0 });
    try {
      expect(await r.set("infera:probe", "1")).toBe("OK");
      expect(await r.config("GET", "protected-mode")).toEqual(["protected-mode", "yes"]);
      expect(await r.config("GET", "maxmemory-policy")).toEqual(["maxmemory-policy", "noeviction"]);
    } finally {
      r.disconnect();
    }
  });
});
