/**
 * Process control for fault tests (Linux /proc): find the platform's processes (the
 * launcher's scheduler and gateway, each replica's agent and engine), signal them,
 * read their memory and open descriptors, and start an extra scheduler or gateway
 * with the same environment as the running one.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

export type Role = "scheduler" | "gateway" | "batch-gateway" | "agent" | "engine";

const MAIN: Record<Exclude<Role, "batch-gateway">, string> = {
  scheduler: "services/scheduler/src/main.ts",
  gateway: "services/gateway/src/main.ts",
  agent: "services/worker-agent/src/main.ts",
  engine: "services/engine-sim/src/main.ts",
};

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** The parent pid of a process, or undefined once it is gone. */
export function parentOf(pid: number): number | undefined {
  const stat = read(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  // "pid (comm) state ppid …" — comm may hold spaces and parentheses: split after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(rest[1]);
}

/** Alive and not a zombie. */
export function isAlive(pid: number): boolean {
  const stat = read(`/proc/${pid}/stat`);
  if (!stat) return false;
  return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
}

/** `T` when stopped (SIGSTOP), `S`/`R` when running, … */
export function stateOf(pid: number): string | undefined {
  const stat = read(`/proc/${pid}/stat`);
  return stat?.slice(stat.lastIndexOf(")") + 2)[0];
}

export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    if (parentOf(Number(name)) === pid) out.push(Number(name));
  }
  return out;
}

export function cmdlineOf(pid: number): string[] {
  return (read(`/proc/${pid}/cmdline`) ?? "").split("\0").filter(Boolean);
}

export function environOf(pid: number): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kv of (read(`/proc/${pid}/environ`) ?? "").split("\0")) {
    const i = kv.indexOf("=");
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return env;
}

export function roleOf(pid: number): Role | undefined {
  const cmd = cmdlineOf(pid).join(" ");
  const role = (Object.keys(MAIN) as (keyof typeof MAIN)[]).find((r) => cmd.includes(MAIN[r]));
  // Local mode's batch gateway (LOCAL_BATCH_GATEWAY) is a gateway process that serves no requests.
  return role === "gateway" && environOf(pid).INFERA_LOCAL_ROLE === "batch-gateway" ? "batch-gateway" : role;
}

/** The launcher's running children with a given role. */
export function servicePids(launcherPid: number, role: "scheduler" | "gateway" | "batch-gateway"): number[] {
  return childrenOf(launcherPid).filter((p) => isAlive(p) && roleOf(p) === role);
}

export interface ReplicaProcesses {
  replicaId: string;
  deploymentId: string;
  agentPid: number;
  enginePid: number | undefined;
  engineUrl: string;
}

/** Each replica a scheduler runs: its agent and engine pids and the engine's URL. */
export function replicasOf(schedulerPid: number): ReplicaProcesses[] {
  const kids = childrenOf(schedulerPid).filter(isAlive);
  const engines = new Map<string, number>();
  for (const p of kids) if (roleOf(p) === "engine") engines.set(environOf(p).PORT ?? "", p);
  const out: ReplicaProcesses[] = [];
  for (const p of kids) {
    if (roleOf(p) !== "agent") continue;
    const env = environOf(p);
    const engineUrl = env.ENGINE_URL ?? "";
    out.push({
      replicaId: env.REPLICA_ID ?? "",
      deploymentId: env.DEPLOYMENT_ID ?? "",
      agentPid: p,
      enginePid: engines.get(new URL(engineUrl).port),
      engineUrl,
    });
  }
  return out.sort((a, b) => a.replicaId.localeCompare(b.replicaId));
}

/** Every replica of the platform, across all its schedulers. */
export function platformReplicas(launcherPid: number, extraSchedulers: number[] = []): ReplicaProcesses[] {
  return [...servicePids(launcherPid, "scheduler"), ...extraSchedulers.filter(isAlive)].flatMap(replicasOf);
}

export function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

export interface ProcessSample {
  rssKb: number;
  fds: number;
}

/** Resident memory and open file descriptors (sockets included) of a process now. */
export function sampleProcess(pid: number): ProcessSample | undefined {
  const status = read(`/proc/${pid}/status`);
  if (!status) return undefined;
  const rss = /VmRSS:\s+(\d+) kB/.exec(status);
  let fds = 0;
  try {
    fds = readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
  return { rssKb: Number(rss?.[1] ?? 0), fds };
}

export interface ExtraProcess {
  proc: ChildProcess;
  pid: number;
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts another instance of a service with the environment of a running one (same
 * database, Redis, prefix), plus `overrides`. It is not tied to the launcher: the
 * caller stops it.
 */
export function startLike(templatePid: number, role: "scheduler" | "gateway", overrides: Record<string, string> = {}): ExtraProcess {
  const env = environOf(templatePid);
  delete env.INFERA_PARENT_PID;
  delete env.SCHEDULER_ID;
  delete env.GATEWAY_ID;
  let out = "";
  const proc = spawn(process.execPath, ["--import", "tsx", MAIN[role]], { cwd: ROOT, env: { ...env, ...overrides }, stdio: ["ignore", "pipe", "pipe"] });
  proc.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  return {
    proc,
    pid: proc.pid ?? 0,
    output: () => out,
    async stop(graceMs = 20_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
}

/** SIGTERM a child, SIGKILL it if it has not exited after `graceMs`, and wait for the exit. */
export async function stopChild(child: ChildProcess, graceMs = 30_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const t = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(t);
}
