/**
 * Faults in the data plane, under steady streaming load on a two-replica deployment:
 * an agent SIGKILLed mid-stream, an agent frozen (SIGSTOP) without answering, and the
 * engine's own failure injection (5xx and 429 answers, connections closed mid-stream,
 * streams that stall). After each, the invariants: every request ended in time with a
 * whole answer or an OpenAI-shaped error; none served twice; usage exact against both
 * the clients and the engines; nothing left open; the platform serves normally.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { platformReplicas, signal, stateOf, type Platform } from "@infera/testkit";
import {
  EngineWatch,
  expectEveryRequestEnded,
  expectNothingOpen,
  expectServesNormally,
  expectUsageMatchesClients,
  expectUsageMatchesEngines,
  sleep,
  startFaultPlatform,
  startLoad,
  summary,
  waitForHealthyReplicas,
  type Load,
  type RequestRecord,
  type UsageRow,
} from "./harness.ts";

const CONCURRENCY = 6;
let platform: Platform;
let watch: EngineWatch;

beforeAll(async () => {
  platform = await startFaultPlatform("fault-replica", 2);
  watch = new EngineWatch(platform).start();
}, 300_000);
afterAll(async () => {
  watch?.stop();
  await platform?.stop();
}, 120_000);

async function setFaults(rate: number, kinds: string[]): Promise<void> {
  for (const r of platformReplicas(platform.pid)) {
    // A replica the runtime is restarting may not listen yet: try for a while.
    for (let i = 0; ; i++) {
      try {
        const res = await fetch(`${r.engineUrl}/sim/faults`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ rate, kinds }),
        });
        expect(res.status).toBe(200);
        break;
      } catch (err) {
        if (i > 100) throw err;
        await sleep(200);
      }
    }
  }
}

/**
 * One fault, its injection and the invariants as named tests. `inject` runs while the
 * load runs; it returns how many requests may have been open on a killed or frozen
 * replica (the slack for the engine-side usage comparison; 0 when no process died).
 */
function faultSuite(name: string, label: string, inject: (load: Load) => Promise<number>, opts: { expectErrors?: boolean } = {}) {
  describe(`fault: ${name}`, () => {
    let records: RequestRecord[] = [];
    let rows: UsageRow[] = [];
    let slack = 0;

    it("injects the fault under steady streaming load", async () => {
      await waitForHealthyReplicas(platform, 2);
      await watch.baseline();
      const load = startLoad({ baseURL: platform.baseURL, key: platform.adminKey, label, concurrency: CONCURRENCY });
      try {
        await sleep(1200);
        slack = await inject(load);
        await sleep(1500);
      } finally {
        records = await load.stop();
      }
      console.log(`[${name}] outcomes`, summary(records));
      expect(records.filter((r) => r.outcome.kind === "completed").length).toBeGreaterThan(0);
      if (opts.expectErrors) expect(records.filter((r) => r.outcome.kind === "error").length).toBeGreaterThan(0);
    }, 240_000);

    it("invariant: every request completed or got an OpenAI-shaped error within its deadline", () => {
      expectEveryRequestEnded(records);
    });

    it("invariant: no request served twice; usage rows equal what the clients received", async () => {
      rows = await expectUsageMatchesClients(platform, records, `flt-${label}-%`);
    });

    it("invariant: no stream left open (gateway streams, engine requests)", async () => {
      await expectNothingOpen(platform, watch);
    });

    it(`invariant: usage in Postgres equals the engines' completed work${name.includes("agent") ? " (within the requests open on the replica at the fault)" : ""}`, async () => {
      await watch.poll();
      expectUsageMatchesEngines(rows, watch, slack);
    });

    it("invariant: the platform serves normally afterwards, with no manual step", async () => {
      await waitForHealthyReplicas(platform, 2);
      await setFaults(0, []);
      await expectServesNormally(platform, label);
    });
  });
}

faultSuite("an agent killed mid-stream (SIGKILL)", "agentkill", async (load) => {
  const [victim] = platformReplicas(platform.pid);
  expect(victim).toBeDefined();
  const open = load.inflight;
  expect(signal(victim!.agentPid, "SIGKILL")).toBe(true);
  // The local runtime restarts the pair; the surviving replica carries the load meanwhile.
  await sleep(2500);
  return open;
});

faultSuite("an agent that hangs without answering (SIGSTOP, SIGCONT after)", "agentstop", async (load) => {
  const [victim] = platformReplicas(platform.pid);
  expect(victim).toBeDefined();
  const open = load.inflight;
  const frozenAt = Date.now();
  expect(signal(victim!.agentPid, "SIGSTOP")).toBe(true);
  try {
    for (let i = 0; i < 50 && stateOf(victim!.agentPid) !== "T"; i++) await sleep(20);
    expect(stateOf(victim!.agentPid)).toBe("T");
    // Longer than the gateway's idle timeout and the scheduler's stale bound.
    await sleep(5000);
    // Every request open at the freeze ended while the agent was still frozen (not by SIGCONT).
    expect(load.openStartedBefore(frozenAt)).toBe(0);
  } finally {
    signal(victim!.agentPid, "SIGCONT");
  }
  return open;
});

faultSuite(
  "the engine answering 5xx and 429 before the stream starts",
  "engine5xx",
  async () => {
    await setFaults(0.3, ["server_error", "rate_limited"]);
    await sleep(3000);
    await setFaults(0, []);
    return 0;
  },
  { expectErrors: true },
);

faultSuite(
  "the engine closing connections mid-stream",
  "enginedisc",
  async () => {
    await setFaults(0.3, ["disconnect"]);
    await sleep(3000);
    await setFaults(0, []);
    return 0;
  },
  { expectErrors: true },
);

faultSuite(
  "the engine stalling mid-stream",
  "enginestall",
  async () => {
    await setFaults(0.3, ["stall"]);
    await sleep(3000);
    await setFaults(0, []);
    // A stalled stream ends at the gateway's idle timeout.
    await sleep(3000);
    return 0;
  },
  { expectErrors: true },
);
