/**
 * Faults in the control plane, under steady streaming load: the scheduler SIGKILLed
 * (its replicas are its children in local mode and go with it) while a second
 * scheduler stands by and takes over, and the gateway stopped with SIGTERM while
 * streams are open (it drains them, accepts nothing new, flushes usage; the launcher
 * starts it again). Then the invariants, as in the data-plane faults.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { platformReplicas, servicePids, signal, startLike, waitFor, waitForExit, type ExtraProcess, type Platform } from "@infera/testkit";
import {
  EngineWatch,
  expectEveryRequestEnded,
  expectNothingOpen,
  expectServesNormally,
  expectUsageMatchesClients,
  expectUsageMatchesEngines,
  FAULT_ENV,
  sleep,
  startFaultPlatform,
  startLoad,
  summary,
  waitForHealthyReplicas,
  type RequestRecord,
  type UsageRow,
} from "./harness.ts";

let platform: Platform;
let watch: EngineWatch;
let standby: ExtraProcess | undefined;

beforeAll(async () => {
  platform = await startFaultPlatform("fault-control", 2);
  watch = new EngineWatch(platform, () => (standby ? [standby.pid] : [])).start();
}, 300_000);
afterAll(async () => {
  watch?.stop();
  await standby?.stop();
  await platform?.stop();
}, 120_000);

function logLines(text: string, msg: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const j = JSON.parse(line) as Record<string, unknown>;
      if (j.msg === msg) out.push(j);
    } catch {
      // a partial line
    }
  }
  return out;
}

describe("fault: a scheduler killed (SIGKILL) with requests queued, a second scheduler taking over", () => {
  let records: RequestRecord[] = [];
  let rows: UsageRow[] = [];
  let slack = 0;
  let killedId = "";

  it("injects the fault under steady streaming load", async () => {
    const [schedulerPid] = servicePids(platform.pid, "scheduler");
    expect(schedulerPid).toBeDefined();
    killedId = String(logLines(platform.output(), "scheduler started").at(-1)?.schedulerId ?? "");
    expect(killedId).not.toBe("");
    standby = startLike(schedulerPid!, "scheduler");
    const started = standby;
    await waitFor("the standby scheduler to start", () => logLines(started.output(), "scheduler started").length > 0, { timeoutMs: 120_000, intervalMs: 100 });
    expect(logLines(standby.output(), "scheduler started").length).toBe(1);

    await watch.baseline();
    const load = startLoad({ baseURL: platform.baseURL, key: platform.adminKey, label: "schedkill", concurrency: 6 });
    try {
      await sleep(1200);
      // Its replicas exit with it, finishing what they hold first; requests wait in the queue until
      // the new leader's replicas serve. The slack: requests open on the old replicas at any time
      // until they are gone (open at the kill, or placed there on a leased slot after it), whose
      // engines may finish work after their last stats were read.
      const oldEngines = platformReplicas(platform.pid).flatMap((r) => (r.enginePid === undefined ? [] : [r.enginePid]));
      const startedAtKill = load.started;
      slack = load.inflight;
      expect(signal(schedulerPid!, "SIGKILL")).toBe(true);
      await waitForExit(schedulerPid!, 5_000);
      for (const pid of oldEngines) await waitForExit(pid, 30_000);
      slack += load.started - startedAtKill;
      await waitForHealthyReplicas(platform, 2, 90_000);
      await sleep(1500);
    } finally {
      records = await load.stop();
    }
    console.log("[scheduler killed] outcomes", summary(records));
    expect(records.filter((r) => r.outcome.kind === "completed").length).toBeGreaterThan(0);
  }, 240_000);

  it("a scheduler other than the killed one holds the leader lease and runs the replicas", async () => {
    const r = new Redis(platform.redisUrl);
    try {
      const leader = await r.get(`${platform.redisPrefix}:reconciler-leader`);
      expect(leader).toBeTruthy();
      expect(leader).not.toBe(killedId);
    } finally {
      r.disconnect();
    }
    expect(platformReplicas(platform.pid, [standby!.pid]).length).toBeGreaterThanOrEqual(2);
  });

  it("invariant: every request completed or got an OpenAI-shaped error within its deadline", () => {
    expectEveryRequestEnded(records);
  });

  it("invariant: no request served twice; usage rows equal what the clients received", async () => {
    rows = await expectUsageMatchesClients(platform, records, "flt-schedkill-%");
  });

  it("invariant: no stream left open (gateway streams, engine requests)", async () => {
    await expectNothingOpen(platform, watch);
  });

  it("invariant: usage in Postgres equals the engines' completed work (within the requests open at the kill)", async () => {
    await watch.poll();
    expectUsageMatchesEngines(rows, watch, slack);
  });

  it("invariant: the platform serves normally afterwards, with no manual step", async () => {
    await expectServesNormally(platform, "schedkill");
  });
});

describe("fault: a gateway stopped with SIGTERM while streams are open", () => {
  let records: RequestRecord[] = [];
  let termAt = 0;
  let exitedAt = 0;

  it("injects the fault under steady streaming load", async () => {
    await waitForHealthyReplicas(platform, 2);
    const [gatewayPid] = servicePids(platform.pid, "gateway");
    expect(gatewayPid).toBeDefined();
    await watch.baseline();
    // Long streams (~1.5 s), so some are surely open at the signal.
    const load = startLoad({ baseURL: platform.baseURL, key: platform.adminKey, label: "gwterm", concurrency: 6, maxTokens: 100 });
    try {
      await sleep(1500);
      expect(load.inflight).toBeGreaterThan(0);
      termAt = Date.now();
      expect(signal(gatewayPid!, "SIGTERM")).toBe(true);
      expect(await waitForExit(gatewayPid!, Number(FAULT_ENV.SHUTDOWN_GRACE_MS) + 8_000)).toBe(true);
      exitedAt = Date.now();
      // The launcher starts it again; the load carries on against the new one.
      await sleep(4000);
    } finally {
      records = await load.stop();
    }
    console.log("[gateway SIGTERM] outcomes", summary(records), `drained in ${exitedAt - termAt} ms`);
  }, 240_000);

  it("invariant: streams open at SIGTERM finished whole within SHUTDOWN_GRACE_MS", () => {
    const open = records.filter((r) => r.startedAt < termAt - 50 && r.endedAt > termAt);
    expect(open.length).toBeGreaterThan(0);
    expect(open.filter((r) => r.outcome.kind !== "completed").map((r) => `${r.requestId}: ${JSON.stringify(r.outcome)}`)).toEqual([]);
    expect(exitedAt - termAt).toBeLessThan(Number(FAULT_ENV.SHUTDOWN_GRACE_MS) + 5_000);
  });

  it("invariant: the draining gateway accepted no new request (refused, or a 503 to retry)", () => {
    const during = records.filter((r) => r.startedAt > termAt + 50 && r.endedAt < exitedAt);
    expect(during.filter((r) => r.outcome.kind === "completed").map((r) => r.requestId)).toEqual([]);
    for (const r of during) if (r.outcome.kind === "error") expect(r.outcome.status).toBe(503);
  });

  it("invariant: every request completed, got an OpenAI-shaped error, or was refused before being accepted", () => {
    expectEveryRequestEnded(records, { allowRefused: true });
  });

  it("invariant: usage was flushed: rows equal what the clients received, none twice, and equal the engines' completed work", async () => {
    const rows = await expectUsageMatchesClients(platform, records, "flt-gwterm-%");
    await watch.poll();
    expectUsageMatchesEngines(rows, watch, 0);
  });

  it("invariant: no stream left open", async () => {
    await expectNothingOpen(platform, watch);
  });

  it("invariant: the platform serves normally afterwards (the launcher started the gateway again)", async () => {
    await expectServesNormally(platform, "gwterm");
  });
});
