import { createLogger, exitWithParent, onShutdown } from "@infera/core";
import { loadConfig } from "./config.ts";
import { startAgent } from "./agent.ts";

const config = loadConfig(process.env);
const logger = createLogger({ service: "worker-agent", level: config.logLevel }).child({ replicaId: config.replicaId, deploymentId: config.deploymentId });
const agent = await startAgent(config, logger);
const shutdown = onShutdown(logger, config.shutdownGraceMs + 5_000, () => agent.stoppers);
// Started by local mode: exit when the process that started us is gone (even SIGKILLed).
exitWithParent(() => shutdown("parent gone", { quiet: true }));
