/**
 * A second gateway process beside a running platform: same Postgres, same Redis prefix,
 * its own port, started exactly as a replica would be (`services/gateway/src/main.ts`).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Platform } from "./platform.ts";
import { freePort } from "./ports.ts";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

export interface ExtraGateway {
  baseURL: string;
  openaiURL: string;
  pid: number;
  output(): string;
  /** SIGTERM (graceful: drains and flushes usage), then waits for the exit. */
  stop(): Promise<number | null>;
}

export async function startExtraGateway(platform: Platform, env: Record<string, string> = {}): Promise<ExtraGateway> {
  const port = await freePort();
  let out = "";
  const child: ChildProcess = spawn(process.execPath, ["--import", "tsx", "services/gateway/src/main.ts"], {
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_ENV: "test",
      PORT: String(port),
      HOST: "127.0.0.1",
      DATABASE_URL: platform.databaseUrl,
      REDIS_URL: platform.redisUrl,
      REDIS_PREFIX: platform.redisPrefix,
      AGENT_AUTH_TOKEN: platform.agentAuthToken,
      LOG_LEVEL: "info",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const baseURL = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 30_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    }
    return child.exitCode;
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the extra gateway exited:\n${out.slice(-4000)}`);
    try {
      if ((await fetch(`${baseURL}/readyz`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the extra gateway was not ready in time:\n${out.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { baseURL, openaiURL: `${baseURL}/v1/openai`, pid: child.pid ?? 0, output: () => out, stop };
}
