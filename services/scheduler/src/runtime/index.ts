import { ConfigError, type Logger } from "@infera/core";
import type { SchedulerConfig } from "../config.ts";
import type { RuntimeDriver } from "./driver.ts";
import { LocalDriver } from "./local.ts";

export async function createDriver(config: SchedulerConfig, logger: Logger): Promise<RuntimeDriver> {
  if (config.runtime === "kubernetes") {
    const { createKubernetesDriver } = await import("./kubernetes.ts");
    return createKubernetesDriver(config, logger.child({ component: "kubernetes" }));
  }
  if (!config.agentAuthToken) throw new ConfigError("RUNTIME=local starts worker agents, which need AGENT_AUTH_TOKEN: set it (and the same on the gateway)");
  const simEnv: Record<string, string> = {};
  if (config.local.simTtftMs !== undefined) simEnv.SIM_TTFT_MS = config.local.simTtftMs;
  if (config.local.simItlMs !== undefined) simEnv.SIM_ITL_MS = config.local.simItlMs;
  if (config.local.simStartupDelayMs !== undefined) simEnv.SIM_STARTUP_DELAY_MS = config.local.simStartupDelayMs;
  return new LocalDriver({
    logger: logger.child({ component: "local-runtime" }),
    redisUrl: config.redisUrl,
    redisPrefix: config.redisPrefix,
    heartbeatMs: config.heartbeatMs,
    agentAuthToken: config.agentAuthToken,
    simEnv,
    logDir: config.local.logDir,
    maxRestarts: config.local.maxRestarts,
    engineMain: config.local.engineMain,
    agentMain: config.local.agentMain,
  });
}
