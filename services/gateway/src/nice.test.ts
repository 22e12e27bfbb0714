import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const NICE = fileURLToPath(new URL("./nice.ts", import.meta.url));

describe("BATCH_NICE: lowerPriority", () => {
  it("lowers every thread of the process, and the threads made after it", () => {
    // A process of its own (nice cannot be raised back): each thread's nice from /proc, before and after.
    const script = `
      import { readdirSync, readFileSync } from "node:fs";
      import { Worker } from "node:worker_threads";
      import { lowerPriority } from ${JSON.stringify(NICE)};
      const nices = () => readdirSync("/proc/self/task").map((t) => Number(readFileSync("/proc/self/task/" + t + "/stat", "utf8").split(") ")[1].split(" ")[16]));
      const before = nices();
      const now = lowerPriority(7);
      const after = nices();
      const w = new Worker("setTimeout(() => {}, 200)", { eval: true });
      await new Promise((r) => w.once("online", r));
      console.log(JSON.stringify({ before, now, after, withWorker: nices() }));
      await w.terminate();
    `;
    const out = JSON.parse(execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8" })) as Record<
      string,
      number[] | number
    >;
    const start = (out.before as number[])[0]!;
    expect((out.before as number[]).length).toBeGreaterThan(1);
    expect(out.now).toBe(Math.min(19, start + 7));
    expect(new Set(out.after as number[])).toEqual(new Set([Math.min(19, start + 7)]));
    expect((out.withWorker as number[]).length).toBeGreaterThan((out.after as number[]).length);
    expect(new Set(out.withWorker as number[])).toEqual(new Set([Math.min(19, start + 7)]));
  });
});
