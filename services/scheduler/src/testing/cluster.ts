/**
 * A small cluster for the scheduler's integration tests (and the dispatch benchmark):
 * real Redis, real Postgres, real schedulers (`startScheduler`, in-process, with a runtime
 * driver that runs nothing), the queue's real `QueueClient` as the producer (what the gateway runs), and fake
 * replicas that heartbeat into the replica hash exactly as agents do and "serve" a request
 * by holding it for a while. Every assignment any scheduler publishes is recorded (a
 * pattern subscription on the gateways' reply channels), so a test can count assignments
 * per request id across schedulers and read dispatch order.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import type { Kysely } from "kysely";
import { createLogger, PlatformError, type Logger } from "@infera/core";
import { redisKeys, type RedisKeys, type ReplicaReport } from "@infera/contracts";
import type { PolicyName } from "@infera/policy";
import { type Assigned, type InferJob, PRIORITY, parseAssignments, QueueClient, type QueueClientMetrics, type QueueKeys, queueKeys } from "@infera/queue";
import { createDeployment, ensureModelVersion, transition, type DB } from "@infera/registry";
import { loadConfig } from "../config.ts";
import type { RuntimeDriver } from "../runtime/driver.ts";
import { startScheduler, type RunningScheduler } from "../scheduler.ts";

/** A runtime driver that runs nothing: the tests' replicas are started by the test. */
export const staticDriver: RuntimeDriver = {
  name: "local",
  apply: async () => {},
  observe: async () => [],
  remove: async () => {},
  stop: async () => {},
};

export const silentLogger: Logger = createLogger({ service: "test", level: process.env.TEST_LOG_LEVEL ?? "silent" });

/** The producer's counters: not looked at here. */
const uncounted: QueueClientMetrics = { assignments: { inc: () => {} }, enqueued: { inc: () => {} } };

export async function createRunningDeployment(db: Kysely<DB>, maxBatchSize: number, placement: PolicyName): Promise<string> {
  const { versionId } = await ensureModelVersion(db, { tenantId: null, name: `m-${randomBytes(4).toString("hex")}`, task: "chat", version: "1" });
  const d = await createDeployment(db, {
    tenantId: null,
    modelVersionId: versionId,
    config: { gpu: "A100-80GB", num_gpus: 1, max_batch_size: maxBatchSize, engine: "vllm", hf: null, container_image: null, extra_args: [], placement },
    settings: { min_instances: 1, max_instances: 1 },
  });
  for (const s of ["downloading", "deploying", "running"] as const) await transition(db, d.id, s);
  return d.id;
}

/** One replica as the scheduler sees it: heartbeat reports in Redis, and a "server" that holds requests. */
export class FakeReplica {
  running = 0;
  maxRunning = 0;
  served = 0;
  alive = true;
  healthy = true;
  draining = false;
  lastReportAt = 0;
  /**
   * A request that ended still counts in its reports this long (ms): an agent reports what its
   * engine's metrics said a moment before, so its count drops after the gateway's release has
   * reached the scheduler.
   */
  lingerMs = 0;
  private lingering = 0;
  /** Concurrent requests per scheduler id, and the most seen at once. */
  readonly bySched = new Map<string, number>();
  maxBySched = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly dying = new Set<() => void>();

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    readonly deploymentId: string,
    readonly id: string,
    /** How long it takes to serve one request (ms). */
    public serveMs: number,
    private readonly heartbeatMs: number,
  ) {}

  async start(): Promise<void> {
    await this.report();
    this.timer = setInterval(() => void this.report().catch(() => {}), this.heartbeatMs);
  }

  async report(): Promise<void> {
    if (!this.alive) return;
    const at = Date.now();
    const r: ReplicaReport = {
      replicaId: this.id,
      deploymentId: this.deploymentId,
      address: `fake:${this.id}`,
      running: this.running + this.lingering,
      waiting: 0,
      kvCacheUsage: 0,
      healthy: this.healthy,
      draining: this.draining,
      at,
      // Its count is what the engine's metrics said `lingerMs` before.
      sampledAt: at - this.lingerMs,
    };
    await this.redis.hset(this.keys.replicas(this.deploymentId), this.id, JSON.stringify(r));
    this.lastReportAt = at;
  }

  /**
   * The process is gone: no more heartbeats; calls to it fail before the first byte, and so
   * do the ones it held (this fake sends its whole answer at the end).
   */
  kill(): void {
    this.alive = false;
    if (this.timer) clearInterval(this.timer);
    for (const die of this.dying) die();
  }

  /** Holds the request for `serveMs`; false when the replica died before answering. */
  async serve(schedulerId: string): Promise<boolean> {
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    const n = (this.bySched.get(schedulerId) ?? 0) + 1;
    this.bySched.set(schedulerId, n);
    this.maxBySched = Math.max(this.maxBySched, n);
    let die: (() => void) | undefined;
    try {
      const done = await new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(true), this.serveMs);
        die = () => {
          clearTimeout(t);
          resolve(false);
        };
        this.dying.add(die);
      });
      if (done) this.served++;
      return done;
    } finally {
      if (die) this.dying.delete(die);
      this.running--;
      if (this.lingerMs > 0) {
        this.lingering++;
        setTimeout(() => this.lingering--, this.lingerMs).unref();
      }
      this.bySched.set(schedulerId, (this.bySched.get(schedulerId) ?? 1) - 1);
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

export interface SeenAssignment {
  requestId: string;
  replicaId: string;
  schedulerId: string;
  /** Order in which assignments reached the observer, across schedulers. */
  seq: number;
  at: number;
  /** Placed by its gateway on a leased slot (the fast path), not published by a scheduler. */
  fast?: boolean;
}

export interface RequestOptions {
  tenantId: string;
  estimatedTokens?: number;
  priority?: number;
  /** Tokens the request "generates", reported with its release (output-token fairness). */
  completionTokens?: number;
  waitMs?: number;
  prefixHashes?: string[];
}

export interface RequestResult {
  requestId: string;
  tenantId: string;
  /** Every replica it was assigned to, in order (more than one after a failed replica). */
  replicas: string[];
  attempts: number;
  enqueuedAt: number;
  queuedMs: number;
  /** `queue_full`, `unavailable` … when it was answered with an error. */
  error?: PlatformError;
}

export interface ClusterOptions {
  db: Kysely<DB>;
  databaseUrl: string;
  redisUrl: string;
  capacity: number;
  placement?: PolicyName;
  schedulers?: number;
  heartbeatMs?: number;
  /** Gateway's queue bound (QUEUE_MAX_PER_DEPLOYMENT). */
  queueMax?: number;
  /** Scheduler's MAX_QUEUED_PER_DEPLOYMENT (its in-memory fair queue). */
  maxQueuedPerScheduler?: number;
  gateways?: number;
  maxAttempts?: number;
  /** Record every assignment (a pattern subscription); off for the benchmark. Default true. */
  observe?: boolean;
  /** FAST_PATH for gateways and schedulers (slot leases). Default true, as deployed. */
  fastPath?: boolean;
  /** The gateways' idle slot-lease windows (`QueueClientOptions.slotLeaseIdle`). Default: as deployed. */
  slotLeaseIdle?: { hotMs: number; keepMs: number };
}

export class TestCluster {
  readonly prefix = `test-sched-${randomBytes(4).toString("hex")}`;
  readonly keys: RedisKeys;
  readonly qkeys: QueueKeys;
  readonly redis: Redis;
  readonly replicas = new Map<string, FakeReplica>();
  readonly seen: SeenAssignment[] = [];
  readonly schedulers: { id: string; running: RunningScheduler }[] = [];
  readonly gateways: { id: string; queue: QueueClient; conns: Redis[] }[] = [];
  deploymentId = "";
  private observer: Redis | undefined;
  private seq = 0;
  private reqSeq = 0;
  /** How long after its replica is done a request's release goes out (ms): a gateway still relaying its last tokens on a loaded machine. */
  releaseLagMs = 0;
  /** How long after its assignment was published a queued request reaches its replica (ms): pub/sub delivery and the agent call on a loaded machine. */
  startLagMs = 0;
  readonly heartbeatMs: number;

  constructor(readonly o: ClusterOptions) {
    this.keys = redisKeys(this.prefix);
    this.qkeys = queueKeys(this.prefix);
    this.redis = new Redis(o.redisUrl, { maxRetriesPerRequest: 3 });
    this.heartbeatMs = o.heartbeatMs ?? 200;
  }

  async start(): Promise<void> {
    this.deploymentId = await createRunningDeployment(this.o.db, this.o.capacity, this.o.placement ?? "least-loaded");
    if (this.o.observe !== false) await this.startObserver();
    for (let g = 0; g < (this.o.gateways ?? 1); g++) await this.addGateway(`gw-${g}`);
    for (let i = 0; i < (this.o.schedulers ?? 2); i++) await this.addScheduler(`sched-${i}`);
  }

  private async startObserver(): Promise<void> {
    this.observer = new Redis(this.o.redisUrl, { maxRetriesPerRequest: null, lazyConnect: true });
    await this.observer.connect();
    await this.observer.psubscribe(`${this.prefix}:gw:*`);
    this.observer.on("pmessage", (_p, _ch, message) => {
      for (const a of parseAssignments(message).items) {
        if (a.type === "assigned")
          this.seen.push({ requestId: a.requestId, replicaId: a.replicaId, schedulerId: a.schedulerId, seq: this.seq++, at: Date.now() });
      }
    });
  }

  async addGateway(id: string): Promise<QueueClient> {
    const redis = new Redis(this.o.redisUrl, { maxRetriesPerRequest: 2 });
    const queueConn = new Redis(this.o.redisUrl, { maxRetriesPerRequest: null, enableAutoPipelining: true });
    const sub = new Redis(this.o.redisUrl, { maxRetriesPerRequest: null, lazyConnect: true });
    const queue = new QueueClient({
      redis,
      queueConnection: queueConn,
      keys: this.qkeys,
      gatewayId: id,
      metrics: uncounted,
      logger: silentLogger,
      queueMax: this.o.queueMax,
      syncMs: 50,
      fastPath: this.o.fastPath !== false,
      slotLeaseIdle: this.o.slotLeaseIdle,
    });
    queue.start();
    await sub.connect();
    await sub.subscribe(queue.replyChannel);
    sub.on("message", (_ch, m) => queue.deliver(m));
    this.gateways.push({ id, queue, conns: [redis, queueConn, sub] });
    return queue;
  }

  async addScheduler(id: string): Promise<void> {
    const config = loadConfig({
      DATABASE_URL: this.o.databaseUrl,
      REDIS_URL: this.o.redisUrl,
      REDIS_PREFIX: this.prefix,
      SCHEDULER_ID: id,
      METRICS_PORT: "0",
      METRICS_HOST: "127.0.0.1",
      HEARTBEAT_MS: String(this.heartbeatMs),
      RECONCILE_MS: "500",
      MAX_QUEUED_PER_DEPLOYMENT: String(this.o.maxQueuedPerScheduler ?? 10_000),
      JOB_LOCK_MS: "5000",
      FAST_PATH: String(this.o.fastPath !== false),
    });
    const running = await startScheduler(config, silentLogger.child({ schedulerId: id }), staticDriver, this.o.db);
    this.schedulers.push({ id, running });
  }

  /** A replica that heartbeats from now on; `state` holds from its first report (no window in which it looks healthy). */
  async addReplica(id: string, serveMs: number, state: { healthy?: boolean; draining?: boolean } = {}): Promise<FakeReplica> {
    const r = new FakeReplica(this.redis, this.keys, this.deploymentId, id, serveMs, this.heartbeatMs);
    Object.assign(r, state);
    await r.start();
    this.replicas.set(id, r);
    return r;
  }

  /**
   * One request as the gateway runs it: enqueue, wait for a replica, "call" it, release.
   * A dead replica fails the call before the first byte: re-queued at the front with that
   * replica excluded (what inference.ts does).
   */
  async request(opts: RequestOptions, gateway = 0): Promise<RequestResult> {
    const g = this.gateways[gateway]!;
    const requestId = `req-${this.reqSeq++}-${randomBytes(3).toString("hex")}`;
    const enqueuedAt = Date.now();
    const deadline = enqueuedAt + (opts.waitMs ?? 60_000);
    const replicas: string[] = [];
    const exclude: string[] = [];
    const maxAttempts = this.o.maxAttempts ?? 3;
    let queuedMs = 0;
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      const job: InferJob = {
        requestId,
        gatewayId: g.id,
        tenantId: opts.tenantId,
        keyId: `key-${opts.tenantId}`,
        endpoint: "chat",
        prefixHashes: opts.prefixHashes ?? [],
        estimatedTokens: opts.estimatedTokens ?? 100,
        deadline,
        enqueuedAt: Date.now(),
        priority: attempt === 0 ? (opts.priority ?? PRIORITY.standard) : PRIORITY.requeued,
        excludeReplicas: exclude.length ? [...exclude] : undefined,
        attempt,
      };
      let a: Assigned;
      try {
        // As inference.ts: a first attempt takes a leased slot when its gateway has one free.
        const fast = attempt === 0 ? g.queue.place(this.deploymentId, job) : undefined;
        if (fast) this.seen.push({ requestId, replicaId: fast.replicaId, schedulerId: fast.schedulerId, seq: this.seq++, at: Date.now(), fast: true });
        a = fast ?? (await g.queue.enqueue(this.deploymentId, job, new AbortController().signal));
      } catch (err) {
        return { requestId, tenantId: opts.tenantId, replicas, attempts: attempt + 1, enqueuedAt, queuedMs, error: err as PlatformError };
      }
      if (attempt === 0) queuedMs = a.queuedMs;
      if (this.startLagMs > 0 && a.epoch === undefined) await new Promise((res) => setTimeout(res, this.startLagMs));
      replicas.push(a.replicaId);
      const replica = this.replicas.get(a.replicaId);
      if (!replica?.alive) {
        g.queue.release(a, true);
        exclude.push(a.replicaId);
        continue;
      }
      if (!(await replica.serve(a.schedulerId))) {
        g.queue.release(a, true);
        exclude.push(a.replicaId);
        continue;
      }
      if (this.releaseLagMs > 0) await new Promise((res) => setTimeout(res, this.releaseLagMs));
      g.queue.release(a, false, {
        tenantId: opts.tenantId,
        estimatedTokens: opts.estimatedTokens ?? 100,
        promptTokens: opts.estimatedTokens ?? 100,
        completionTokens: opts.completionTokens ?? 0,
      });
      return { requestId, tenantId: opts.tenantId, replicas, attempts: attempt + 1, enqueuedAt, queuedMs };
    }
    return {
      requestId,
      tenantId: opts.tenantId,
      replicas,
      attempts: maxAttempts,
      enqueuedAt,
      queuedMs,
      error: new PlatformError("unavailable", "no replica could serve it"),
    };
  }

  /** Assignments per request id, across every scheduler. */
  assignmentsPerRequest(): Map<string, number> {
    const m = new Map<string, number>();
    for (const s of this.seen) m.set(s.requestId, (m.get(s.requestId) ?? 0) + 1);
    return m;
  }

  async stop(): Promise<void> {
    for (const r of this.replicas.values()) r.stop();
    for (const g of this.gateways) await g.queue.stop();
    for (const s of this.schedulers) await s.running.stop();
    for (const g of this.gateways) for (const c of g.conns) c.disconnect();
    // Let the next cluster's schedulers ignore this deployment.
    await transition(this.o.db, this.deploymentId, "stopped").catch(() => {});
    this.observer?.disconnect();
    const r = this.redis;
    let cursor = "0";
    do {
      const [next, found] = await r.scan(cursor, "MATCH", `${this.prefix}*`, "COUNT", 1000);
      cursor = next;
      if (found.length) await r.del(...found);
    } while (cursor !== "0");
    r.disconnect();
  }
}
