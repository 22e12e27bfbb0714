import { appendFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { LogLine } from "./driver.ts";
import { deploymentLogFiles, followLogFiles, MAX_LINE, tailLines } from "./local-logs.ts";

function dir(): string {
  return mkdtempSync(join(tmpdir(), "infera-logs-"));
}

describe("the local runtime's replica logs", () => {
  it("lists a deployment's files only, engine before agent, replicas in order", async () => {
    const d = dir();
    for (const f of ["dep_a-r10-agent.log", "dep_a-r2-engine.log", "dep_a-r2-agent.log", "dep_ab-r1-engine.log", "dep_a-r10-engine.log", "other.log"])
      writeFileSync(join(d, f), "");
    expect((await deploymentLogFiles(d, "dep_a")).map((f) => `${f.replicaId}/${f.source}`)).toEqual([
      "dep_a-r2/engine",
      "dep_a-r2/agent",
      "dep_a-r10/engine",
      "dep_a-r10/agent",
    ]);
    expect((await deploymentLogFiles(d, "dep_a", "dep_a-r10")).length).toBe(2);
    expect(await deploymentLogFiles(join(d, "missing"), "dep_a")).toEqual([]);
  });

  it("tails the last lines of a file larger than one read, and cuts a huge line", async () => {
    const f = join(dir(), "x.log");
    const lines = Array.from({ length: 5000 }, (_, i) => `line ${i} ${"x".repeat(40)}`);
    writeFileSync(f, `${lines.join("\n")}\n`);
    expect((await tailLines(f, 3)).lines).toEqual(lines.slice(-3));
    expect((await tailLines(f, 0)).lines).toEqual([]);
    expect((await tailLines(f, 10_000)).lines).toEqual(lines);
    writeFileSync(f, `${"y".repeat(MAX_LINE * 2)}\nlast`);
    const t = await tailLines(f, 2);
    expect(t.lines[0]?.length).toBe(MAX_LINE + 1);
    expect(t.lines[1]).toBe("last");
  });

  it("follows what the files gain and the files that appear, until aborted", async () => {
    const d = dir();
    writeFileSync(join(d, "dep_a-r1-engine.log"), "old 1\nold 2\n");
    const abort = new AbortController();
    const seen: LogLine[] = [];
    const done = (async () => {
      for await (const l of followLogFiles(() => deploymentLogFiles(d, "dep_a"), { tail: 1, follow: true, signal: abort.signal })) {
        seen.push(l);
        if (seen.length === 4) abort.abort();
      }
    })();
    await new Promise((r) => setTimeout(r, 400));
    appendFileSync(join(d, "dep_a-r1-engine.log"), "new 1\npartial");
    writeFileSync(join(d, "dep_a-r2-agent.log"), "started\n");
    await new Promise((r) => setTimeout(r, 400));
    appendFileSync(join(d, "dep_a-r1-engine.log"), " ended\n");
    await done;
    expect(seen.map((l) => `${l.replicaId} ${l.source} ${l.line}`).sort()).toEqual(
      ["dep_a-r1 engine old 2", "dep_a-r1 engine new 1", "dep_a-r2 agent started", "dep_a-r1 engine partial ended"].sort(),
    );
    expect(seen[0]?.line).toBe("old 2");
  });
});
