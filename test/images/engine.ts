/**
 * The container engine as the images test drives it: podman with infera's settings
 * (deploy/engine.sh: host networking, no bridge, storage in the per-machine cache), and
 * deploy/compose.yaml run by docker-compose through a podman API socket of this test's own,
 * so two checkouts can run the test at once and nothing outlives it.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const IMAGE_NAMES = ["gateway", "scheduler", "worker-agent", "engine-sim", "migrate"] as const;
/** Where the images test tags what it builds: <TEST_REGISTRY>/<name>:<run tag>. */
export const TEST_REGISTRY = "localhost/infera-test";

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** podman's settings for infera (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF), as deploy/engine.sh writes them. */
export function engineEnv(): Record<string, string> {
  const r = spawnSync("bash", [join(ROOT, "deploy/engine.sh"), "env"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`deploy/engine.sh env failed: ${r.stderr}`);
  const env: Record<string, string> = {};
  for (const m of r.stdout.matchAll(/(CONTAINERS_[A-Z_]+)=(\S+)/g)) env[m[1]!] = m[2]!.replace(/^'(.*)'$/, "$1");
  return env;
}

/** Runs a command to its end (never through a shell), with its output. */
export function run(cmd: string, args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

export async function must(cmd: string, args: string[], env: Record<string, string> = {}, timeoutMs?: number): Promise<string> {
  const r = await run(cmd, args, env, timeoutMs);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}:\n${r.stderr.slice(-3000)}${r.stdout.slice(-1000)}`);
  return r.stdout;
}

function ping(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath: socket, path: "/_ping", timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

export interface Engine {
  /** Env for podman and docker-compose (infera's podman settings, DOCKER_HOST on this test's socket). */
  env: Record<string, string>;
  podman(args: string[], timeoutMs?: number): Promise<Run>;
  /** docker-compose -p <project> -f deploy/compose.yaml <args>, with `vars` for the file's variables. */
  compose(args: string[], vars: Record<string, string>, timeoutMs?: number): Promise<Run>;
  project: string;
  stop(): Promise<void>;
}

/** Starts podman's Docker-compatible API on a socket of this test's own (docker-compose talks to it). */
export async function startEngine(project: string): Promise<Engine> {
  const env = engineEnv();
  const dir = mkdtempSync(join(tmpdir(), "infera-engine-"));
  const socket = join(dir, "podman.sock");
  let log = "";
  // It exits by itself after 120 s without a request, should this test be killed before stop().
  const service: ChildProcess = spawn("podman", ["system", "service", "--time=120", `unix://${socket}`], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  service.stderr?.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-20_000)));
  const deadline = Date.now() + 30_000;
  while (!(existsSync(socket) && (await ping(socket)))) {
    if (service.exitCode !== null) throw new Error(`podman system service exited ${service.exitCode}:\n${log}`);
    if (Date.now() > deadline) throw new Error(`podman's API socket did not answer in 30 s:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const all = { ...env, DOCKER_HOST: `unix://${socket}`, COMPOSE_PROJECT_NAME: project };
  return {
    env: all,
    project,
    podman: (args, timeoutMs) => run("podman", args, env, timeoutMs),
    compose: (args, vars, timeoutMs) =>
      run("docker-compose", ["-p", project, "-f", join(ROOT, "deploy/compose.yaml"), ...args], { ...all, ...vars }, timeoutMs),
    async stop() {
      if (service.exitCode === null) {
        const exited = new Promise((r) => service.once("exit", r));
        service.kill("SIGTERM");
        const t = setTimeout(() => service.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
