/**
 * The local runtime: each replica is an engine-sim process and a worker-agent process,
 * real children of the scheduler. A replica that exits is restarted with backoff; one
 * that keeps crashing is reported failed (the reconciler fails its deployment). Stop
 * and remove kill both processes; nothing is left behind.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { createServer } from "node:net";
import { hostname } from "node:os";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { PlatformError, type Logger } from "@infera/core";
import type { LogLine, LogQuery, ReplicaObservation, ReplicaSpec, RuntimeDriver } from "./driver.ts";
import { deploymentLogFiles, followLogFiles } from "./local-logs.ts";

const REPO_ROOT = fileURLToPath(new URL("../../../../", import.meta.url));
/** From source (tsx), as `pnpm start` runs them; an image names its compiled bundles instead. */
const ENGINE_MAIN = join(REPO_ROOT, "services/engine-sim/src/main.ts");
const AGENT_MAIN = join(REPO_ROOT, "services/worker-agent/src/main.ts");

export interface LocalDriverOptions {
  logger: Logger;
  redisUrl: string;
  redisPrefix: string;
  heartbeatMs: number;
  /** AGENT_AUTH_TOKEN of the agents it starts: the one the gateway sends. */
  agentAuthToken: string;
  /** Extra env for engine-sim (SIM_TTFT_MS …). */
  simEnv: Record<string, string>;
  logDir?: string;
  maxRestarts: number;
  host?: string;
  /** The engine-sim and worker-agent entry points: a `.ts` file runs with tsx, anything else with plain node. */
  engineMain?: string;
  agentMain?: string;
}

interface Replica {
  id: string;
  spec: ReplicaSpec;
  engine?: ChildProcess;
  agent?: ChildProcess;
  restarts: number;
  startedAt: number;
  phase: ReplicaObservation["phase"];
  /** When it entered this phase. */
  since: number;
  reason?: string;
  stopping: boolean;
  /** Scaled down, stopped or deleted: never launch it again. */
  removed: boolean;
  /** Which launch the current processes belong to: a late exit of an earlier pair is ignored. */
  generation: number;
  restartTimer?: NodeJS.Timeout;
}

async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, host, () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

const SIM_MODE: Record<ReplicaSpec["engine"], string> = { vllm: "vllm", tgi: "tgi", tei: "tei", image: "image" };

export class LocalDriver implements RuntimeDriver {
  readonly name = "local" as const;
  private readonly replicas = new Map<string, Replica[]>();
  private seq = 0;
  private readonly ops = new Map<string, Promise<void>>();
  private readonly host: string;

  constructor(private readonly o: LocalDriverOptions) {
    this.host = o.host ?? "127.0.0.1";
    if (o.logDir) mkdirSync(o.logDir, { recursive: true });
  }

  /** apply and remove of one deployment run one at a time: a remove never misses a replica an apply is starting. */
  private serial(deploymentId: string, fn: () => Promise<void>): Promise<void> {
    const next = (this.ops.get(deploymentId) ?? Promise.resolve()).then(fn, fn);
    const tail = next.catch(() => {});
    this.ops.set(deploymentId, tail);
    void tail.then(() => {
      if (this.ops.get(deploymentId) === tail) this.ops.delete(deploymentId);
    });
    return next;
  }

  apply(spec: ReplicaSpec, replicas: number): Promise<void> {
    return this.serial(spec.deploymentId, async () => {
      const list = this.replicas.get(spec.deploymentId) ?? [];
      this.replicas.set(spec.deploymentId, list);
      while (list.length < replicas) {
        const r: Replica = {
          id: `${spec.deploymentId}-r${++this.seq}`,
          spec,
          restarts: 0,
          startedAt: 0,
          phase: "pending",
          since: Date.now(),
          stopping: false,
          removed: false,
          generation: 0,
        };
        list.push(r);
        await this.launch(r);
      }
      while (list.length > replicas) {
        const r = list.pop()!;
        await this.kill(r);
      }
    });
  }

  async observe(deploymentId: string): Promise<ReplicaObservation[]> {
    const node = hostname();
    return (this.replicas.get(deploymentId) ?? []).map((r) => ({
      replicaId: r.id,
      phase: r.phase,
      since: r.since,
      node,
      reason: r.reason,
      restarts: r.restarts,
    }));
  }

  /**
   * Its replicas' log files (`<replica>-engine.log`, `<replica>-agent.log` in LOCAL_LOG_DIR):
   * those of earlier runs too, so a stopped or failed deployment's logs can still be read.
   */
  async *logs(deploymentId: string, query: LogQuery): AsyncGenerator<LogLine> {
    const dir = this.o.logDir;
    if (!dir) throw new PlatformError("unavailable", "This scheduler keeps no replica logs: start it with LOCAL_LOG_DIR.");
    const files = () => deploymentLogFiles(dir, deploymentId, query.replicaId);
    if (query.replicaId !== undefined && (await files()).length === 0 && !(this.replicas.get(deploymentId) ?? []).some((r) => r.id === query.replicaId)) {
      throw new PlatformError("not_found", `The deployment has no replica '${query.replicaId}'.`, { param: "replica" });
    }
    yield* followLogFiles(files, query);
  }

  remove(deploymentId: string): Promise<void> {
    return this.serial(deploymentId, async () => {
      const list = this.replicas.get(deploymentId) ?? [];
      this.replicas.delete(deploymentId);
      await Promise.all(list.map((r) => this.kill(r)));
    });
  }

  async stop(): Promise<void> {
    const all = new Set([...this.replicas.keys(), ...this.ops.keys()]);
    await Promise.all([...all].map((id) => this.remove(id)));
  }

  private setPhase(r: Replica, phase: Replica["phase"]): void {
    if (r.phase !== phase) r.since = Date.now();
    r.phase = phase;
  }

  private async launch(r: Replica): Promise<void> {
    this.setPhase(r, "starting");
    r.startedAt = Date.now();
    r.generation++;
    const enginePort = await freePort(this.host);
    const agentPort = await freePort(this.host);
    // Removed while it looked for ports: starting it now would leave processes behind.
    if (r.removed) return;
    const { spec } = r;
    // The markers name the replica in each process's environment (ps, and the tests that
    // prove nothing is left behind).
    const baseEnv = { ...process.env, INFERA_PARENT_PID: String(process.pid), INFERA_DEPLOYMENT_ID: spec.deploymentId, INFERA_REPLICA_ID: r.id };
    const engineEnv: NodeJS.ProcessEnv = {
      ...baseEnv,
      ...this.o.simEnv,
      PORT: String(enginePort),
      HOST: this.host,
      SIM_MODEL: spec.servedModelName,
      SIM_MODE: SIM_MODE[spec.engine],
      SIM_TASK: spec.task,
      SIM_MAX_NUM_SEQS: String(spec.maxBatchSize),
      SIM_MODALITIES: (spec.modalities ?? ["text"]).join(","),
    };
    const agentEnv: NodeJS.ProcessEnv = {
      ...baseEnv,
      AGENT_PORT: String(agentPort),
      AGENT_HOST: this.host,
      METRICS_PORT: "0",
      ENGINE_URL: `http://${this.host}:${enginePort}`,
      ENGINE_KIND: spec.engine,
      DEPLOYMENT_ID: spec.deploymentId,
      REPLICA_ID: r.id,
      SERVED_MODEL_NAME: spec.servedModelName,
      MAX_BATCH_SIZE: String(spec.maxBatchSize),
      REDIS_URL: this.o.redisUrl,
      REDIS_PREFIX: this.o.redisPrefix,
      AGENT_AUTH_TOKEN: this.o.agentAuthToken,
      HEARTBEAT_MS: String(this.o.heartbeatMs),
      SHUTDOWN_GRACE_MS: "5000",
    };
    r.engine = this.spawnChild(r, "engine", this.o.engineMain ?? ENGINE_MAIN, engineEnv);
    r.agent = this.spawnChild(r, "agent", this.o.agentMain ?? AGENT_MAIN, agentEnv);
    this.setPhase(r, "running");
    // Until its engine is healthy again, /replicas says why it restarted.
    if (r.reason !== undefined && !r.reason.startsWith("restarted after ")) r.reason = `restarted after ${r.reason}`;
    this.o.logger.info({ replicaId: r.id, deploymentId: spec.deploymentId, enginePort, agentPort }, "replica started");
  }

  private spawnChild(r: Replica, role: "engine" | "agent", main: string, env: NodeJS.ProcessEnv): ChildProcess {
    let out: WriteStream | undefined;
    if (this.o.logDir) out = createWriteStream(join(this.o.logDir, `${r.id}-${role}.log`), { flags: "a" });
    const fromSource = main.endsWith(".ts");
    const child = spawn(process.execPath, fromSource ? ["--import", "tsx", main] : [main], {
      cwd: fromSource ? REPO_ROOT : dirname(main),
      env,
      stdio: ["ignore", out ? "pipe" : "ignore", "pipe"],
    });
    if (out) child.stdout?.pipe(out);
    // The last of what it wrote to stderr, for `fail_reason`.
    let tail = "";
    const generation = r.generation;
    child.stderr?.on("data", (chunk: Buffer) => {
      out?.write(chunk);
      tail = (tail + chunk.toString("utf8")).slice(-2048);
    });
    // "close", not "exit": stderr has been read to its end by then.
    child.on("close", (code, signal) => {
      if (r.stopping || generation !== r.generation) return;
      r.restarts++;
      const ranMs = Date.now() - r.startedAt;
      if (ranMs > 30_000) r.restarts = 1; // it had been up for a while: a fresh failure, not a crash loop
      const said = lastLine(tail);
      r.reason = `${role} exited (${signal ?? `code ${code}`})${said ? `: ${said}` : ""}`;
      this.o.logger.warn({ replicaId: r.id, role, code, signal, restarts: r.restarts }, "replica process exited");
      // Take the pair down together and bring it back with backoff, or give up.
      r.stopping = true;
      for (const c of [r.engine, r.agent]) if (c && c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
      if (r.restarts >= this.o.maxRestarts) {
        this.setPhase(r, "failed");
        r.reason = `${r.reason}; crashed ${r.restarts} times in a row`;
        return;
      }
      this.setPhase(r, "starting");
      const backoff = Math.min(10_000, 250 * 2 ** (r.restarts - 1));
      r.restartTimer = setTimeout(() => {
        if (r.removed) return;
        r.stopping = false;
        void this.launch(r).catch((err: unknown) => {
          this.setPhase(r, "failed");
          r.reason = `could not restart: ${(err as Error).message}`;
        });
      }, backoff);
    });
    return child;
  }

  private async kill(r: Replica): Promise<void> {
    r.removed = true;
    r.stopping = true;
    this.setPhase(r, "stopping");
    if (r.restartTimer) clearTimeout(r.restartTimer);
    // Agent first (it drains and deregisters), then its engine.
    await terminate(r.agent, 7_000);
    await terminate(r.engine, 3_000);
  }
}

/** The last non-empty line, trimmed to something a `fail_reason` can hold. */
function lastLine(text: string): string {
  const lines = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
  const line = lines.at(-1) ?? "";
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

async function terminate(child: ChildProcess | undefined, graceMs: number): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}
