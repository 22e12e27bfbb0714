/**
 * The `infera` command line, run as its real binary (the workspace's `node_modules/.bin/infera`,
 * what `npx infera` runs in a clone) against the platform as `pnpm start` runs it: log in,
 * deploy a model, watch it reach `running`, read its events, replicas and logs, change, stop
 * and delete it, create, list and revoke a key, read models and usage — as tables and as
 * `--json` parsed here. Bad flags, refusals and an unreachable platform give the documented
 * exit codes and the API's message with the field it named; a key is never printed after creation.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPlatform, type Platform } from "@infera/testkit";

const BIN = fileURLToPath(new URL("../../node_modules/.bin/infera", import.meta.url));

let platform: Platform;
let configHome = "";
let deployId = "";
/** Everything every command printed after the admin key was handed over. */
const printed: string[] = [];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function infera(args: string[], options: { stdin?: string; env?: Record<string, string> } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, XDG_CONFIG_HOME: configHome, NO_COLOR: "1", ...options.env };
    delete env.INFERA_TOKEN;
    delete env.INFERA_URL;
    Object.assign(env, options.env);
    const child = spawn(BIN, args, { env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      printed.push(stdout, stderr);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(options.stdin ?? "");
  });
}

function json<T>(r: Run): T {
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as T;
}

beforeAll(async () => {
  platform = await startPlatform({ label: "cli", env: { SIM_STARTUP_DELAY_MS: "1500" }, readyTimeoutMs: 120_000 });
  configHome = mkdtempSync(join(tmpdir(), "infera-cli-config-"));
}, 180_000);

afterAll(async () => {
  await platform?.stop();
});

describe("infera, the operator's command line", () => {
  it("refuses a bad key at login and saves nothing; saves a good one with the URL, readable only by its owner", async () => {
    const bad = await infera(["login", "--url", platform.baseURL], { stdin: "sk-not-a-real-key-0000000000\n" });
    expect(bad.code).toBe(3);
    expect(bad.stderr).toContain("Incorrect API key provided.");
    expect(() => statSync(join(configHome, "infera", "config.json"))).toThrow();

    const notAKey = await infera(["login", "--url", platform.baseURL], { stdin: "hello\n" });
    expect(notAKey.code).toBe(2);

    const ok = await infera(["login", "--url", platform.baseURL], { stdin: `${platform.adminKey}\n` });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain(`Logged in to ${platform.baseURL}`);
    const file = join(configHome, "infera", "config.json");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(configHome, "infera")).mode & 0o777).toBe(0o700);
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ url: platform.baseURL, key: platform.adminKey });
  });

  it("creates a deployment and watches it reach running, printing each lifecycle step", async () => {
    const created = json<{ deploy_id: string }>(
      await infera(["deploy", "create", "--model", "cli-llama", "--gpu", "A100-80GB", "--max-batch-size", "8", "--json"]),
    );
    expect(created.deploy_id).toMatch(/^dep_/);
    deployId = created.deploy_id;

    const watched = await infera(["deploy", "watch", deployId, "--timeout", "120"]);
    expect(watched.code, watched.stderr).toBe(0);
    expect(watched.stdout).toMatch(/initializing/);
    expect(watched.stdout).toMatch(/deploying → running {2}a replica is serving/);
    expect(watched.stdout).toContain(`${deployId} is running`);

    // --json: one NDJSON line per event, the deployment last.
    const again = await infera(["deploy", "watch", deployId, "--json"]);
    expect(again.code).toBe(0);
    const lines = again.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { event?: { to_status: string }; deployment?: { status: string } });
    expect(lines.filter((l) => l.event).map((l) => l.event!.to_status)).toEqual(["initializing", "downloading", "deploying", "running"]);
    expect(lines.at(-1)?.deployment?.status).toBe("running");
  }, 150_000);

  it("lists and shows it, with its replicas, as tables and as JSON", async () => {
    const list = json<{ deploy_id: string; status: string; model_name: string }[]>(await infera(["deploy", "list", "--json"]));
    expect(list.map((d) => [d.deploy_id, d.status, d.model_name])).toEqual([[deployId, "running", "admin/cli-llama"]]);
    const table = await infera(["deploy", "list"]);
    expect(table.stdout).toMatch(new RegExp(`${deployId}\\s+admin/cli-llama\\s+1\\s+running\\s+1/1\\s+1× A100-80GB\\s+vllm`));

    const get = await infera(["deploy", "get", deployId]);
    expect(get.code).toBe(0);
    expect(get.stdout).toMatch(/status\s+running/);
    expect(get.stdout).toMatch(new RegExp(`${deployId}-r\\d+\\s+ready`));

    const replicas = json<{ data: { replica_id: string; ready: boolean; gpu: string }[] }>(await infera(["deploy", "replicas", deployId, "--json"]));
    expect(replicas.data).toHaveLength(1);
    expect(replicas.data[0]).toMatchObject({ ready: true, gpu: "A100-80GB" });
  });

  it("reads its events and its engine's and agent's logs", async () => {
    const events = json<{ data: { to_status: string }[]; has_more: boolean }>(await infera(["deploy", "events", deployId, "--json"]));
    expect(events.data.map((e) => e.to_status)).toEqual(["initializing", "downloading", "deploying", "running"]);
    const paged = json<{ data: unknown[]; has_more: boolean; last_id: string }>(await infera(["deploy", "events", deployId, "--limit", "2", "--json"]));
    expect(paged.data).toHaveLength(2);
    expect(paged.has_more).toBe(true);
    const all = json<{ data: unknown[] }>(await infera(["deploy", "events", deployId, "--limit", "1", "--all", "--json"]));
    expect(all.data).toHaveLength(4);

    const logs = await infera(["deploy", "logs", deployId, "--tail", "20"]);
    expect(logs.code, logs.stderr).toBe(0);
    const lines = logs.stdout.trim().split("\n");
    expect(lines.some((l) => new RegExp(`^${deployId}-r\\d+ engine .*engine-sim listening`).test(l))).toBe(true);
    expect(lines.some((l) => new RegExp(`^${deployId}-r\\d+ agent {2}.*agent listening`).test(l))).toBe(true);

    const ndjson = await infera(["deploy", "logs", deployId, "--tail", "2", "--json"]);
    const parsed = ndjson.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { replica_id: string; source: string; line: string });
    expect(parsed.length).toBeGreaterThanOrEqual(2);
    expect(parsed.length).toBeLessThanOrEqual(4);
    expect(new Set(parsed.map((p) => p.source))).toEqual(new Set(["engine", "agent"]));
  });

  it("checks flags before calling, and prints the API's message and the field it named on a 4xx", async () => {
    const before = await infera(["deploy", "get", deployId, "--json"]);
    for (const args of [
      ["deploy", "update", deployId, "--min", "3", "--max", "2"],
      ["deploy", "update", deployId, "--max", "0"],
      ["deploy", "update", deployId],
      ["deploy", "create", "--model", "x"],
      ["deploy", "create", "--model", "x", "--gpu", "L4", "--engine", "llamacpp"],
      ["deploy", "logs", deployId, "--tail", "lots"],
      ["keys", "create", "--tenant", "admin", "--name", "x", "--scopes", "inference,root"],
    ]) {
      const r = await infera(args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr, args.join(" ")).toMatch(/error/);
    }
    expect((await infera(["deploy", "get", deployId, "--json"])).stdout).toBe(before.stdout);

    const badGpu = await infera(["deploy", "create", "--model", "x", "--gpu", "TPU-v9"]);
    expect(badGpu.code).toBe(1);
    expect(badGpu.stderr).toMatch(/Invalid value for 'gpu': 'TPU-v9' is not a GPU type this cluster offers.*\(field: gpu\)/);
    const badGpuJson = await infera(["deploy", "create", "--model", "x", "--gpu", "TPU-v9", "--json"]);
    expect(badGpuJson.code).toBe(1);
    expect((JSON.parse(badGpuJson.stderr) as { error: { param: string } }).error.param).toBe("gpu");

    const missing = await infera(["deploy", "get", "dep_doesnotexist"]);
    expect(missing.code).toBe(4);
    expect(missing.stderr).toContain("(field: deploy_id)");

    const down = await infera(["models"], { env: { INFERA_URL: "http://127.0.0.1:9" } });
    expect(down.code).toBe(5);
    expect(down.stderr).toContain("Could not reach http://127.0.0.1:9");
  });

  it("updates, stops (a second stop is refused), watches a stopped one fail, and deletes it", async () => {
    const updated = json<{ settings: { min_instances: number; max_instances: number } }>(await infera(["deploy", "update", deployId, "--max", "2", "--json"]));
    expect(updated.settings).toEqual({ min_instances: 1, max_instances: 2 });

    const stopped = json<{ status: string }>(await infera(["deploy", "stop", deployId, "--json"]));
    expect(stopped.status).toBe("stopped");
    const twice = await infera(["deploy", "stop", deployId]);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toMatch(/Cannot stop the deployment .* it is stopped.*\(field: status\)/);
    const watch = await infera(["deploy", "watch", deployId]);
    expect(watch.code).toBe(6);
    expect(watch.stderr).toContain("was stopped");

    const deleted = await infera(["deploy", "delete", deployId]);
    expect(deleted.code).toBe(0);
    expect(deleted.stdout).toContain(`Deleted ${deployId} (now deleted)`);
    expect(json<unknown[]>(await infera(["deploy", "list", "--json"]))).toEqual([]);
  });

  it("creates a key whose secret is printed once, lists keys without it, and revokes it", async () => {
    const created = json<{ id: string; secret: string; scopes: string[] }>(
      await infera(["keys", "create", "--tenant", "admin", "--name", "cli-test", "--scopes", "inference", "--json"]),
    );
    expect(created.secret).toMatch(/^sk-/);
    expect(created.scopes).toEqual(["inference"]);
    const before = printed.length;

    const models = json<{ data: { id: string }[] }>(await infera(["models", "--json"], { env: { INFERA_TOKEN: created.secret } }));
    expect(models.data.map((m) => m.id)).toContain("meta-llama/Meta-Llama-3-8B-Instruct");
    const list = await infera(["keys", "list"]);
    expect(list.stdout).toContain(created.id);
    const listed = json<{ data: { id: string; prefix: string }[] }>(await infera(["keys", "list", "--json"]));
    const prefix = listed.data.find((k) => k.id === created.id)!.prefix.replace(/…$/, "");
    expect(prefix.length).toBeGreaterThan(3);
    expect(created.secret.startsWith(prefix)).toBe(true);

    expect((await infera(["keys", "revoke", created.id])).code).toBe(0);
    const refused = await infera(["models"], { env: { INFERA_TOKEN: created.secret } });
    expect(refused.code).toBe(3);
    // After its creation, no command printed the secret.
    expect(printed.slice(before).some((p) => p.includes(created.secret))).toBe(false);
  });

  it("shows models and usage", async () => {
    const models = await infera(["models"]);
    expect(models.stdout).toMatch(/meta-llama\/Meta-Llama-3-8B-Instruct/);
    const chat = await fetch(`${platform.openaiURL}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${platform.adminKey}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "meta-llama/Meta-Llama-3-8B-Instruct", messages: [{ role: "user", content: "count me" }], max_tokens: 3 }),
    });
    expect(chat.status).toBe(200);
    const usage = await (async () => {
      for (let i = 0; ; i++) {
        const u = json<{ group_by: string; data: { model: string; requests: number }[]; total: { requests: number } }>(await infera(["usage", "--json"]));
        if (u.total.requests > 0 || i > 20) return u;
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    expect(usage.group_by).toBe("model");
    expect(usage.data.find((r) => r.model === "meta-llama/Meta-Llama-3-8B-Instruct")?.requests).toBeGreaterThanOrEqual(1);
    const table = await infera(["usage", "--group-by", "day"]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`${new Date().toISOString().slice(0, 10)}\\s+\\d+`));
    expect(table.stdout).toMatch(/total/);
  });

  it("never printed the admin key", () => {
    expect(printed.some((p) => p.includes(platform.adminKey))).toBe(false);
  });
});
