import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const SHUTDOWN = fileURLToPath(new URL("./shutdown.ts", import.meta.url));
const LOGGER = fileURLToPath(new URL("./logger.ts", import.meta.url));

/** A process that stops `names` in order on SIGTERM; a name ending in "!" never finishes. */
async function stopProcess(names: string[], deadlineMs: number): Promise<{ code: number | null; lines: Record<string, unknown>[] }> {
  const script = `
    import { onShutdown } from ${JSON.stringify(SHUTDOWN)};
    import { createLogger } from ${JSON.stringify(LOGGER)};
    const logger = createLogger({ service: "t" });
    const stoppers = ${JSON.stringify(names)}.map((name) => ({
      name,
      stop: () => new Promise((r) => { if (!name.endsWith("!")) setTimeout(r, 50); }),
    }));
    onShutdown(logger, ${deadlineMs}, () => stoppers);
    setInterval(() => {}, 1000);
    console.log(JSON.stringify({ msg: "up" }));
  `;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
    if (out.includes('"up"')) child.kill("SIGTERM");
  });
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  return {
    code,
    lines: out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe("onShutdown", () => {
  it("runs its stop list and exits 0 when it finishes in time", async () => {
    const { code, lines } = await stopProcess(["http", "queue"], 5_000);
    expect(code).toBe(0);
    expect(lines.map((l) => l.msg)).toEqual(["up", "shutting down", "stopped"]);
  });

  it("exits 1 when a component overruns the deadline, naming it and what each before it took", async () => {
    const { code, lines } = await stopProcess(["http", "usage!", "redis"], 2_000);
    expect(code).toBe(1);
    const overran = lines.find((l) => l.msg === "shutdown overran its deadline; exiting");
    expect(overran).toMatchObject({ deadlineMs: 2_000, stopping: "usage!" });
    expect((overran!.took as Record<string, number>).http).toBeGreaterThanOrEqual(40);
    expect(overran!.stoppingMs as number).toBeGreaterThan(1_000);
  });
});
