import { bool, createLogger, exitWithParent, onShutdown } from "@infera/core";
import { loadConfig } from "./config.ts";
import { startGateway } from "./app.ts";
import { lowerPriority } from "./nice.ts";

const config = loadConfig(process.env);
const logger = createLogger({ service: "gateway", level: config.logLevel }).child({ gatewayId: config.gatewayId });
// A batch gateway: interactive work on the same cores gets the CPU first.
if (config.batchNice > 0)
  logger.info({ nice: lowerPriority(config.batchNice), batchWorkerConcurrency: config.batchWorkerConcurrency }, "CPU priority lowered (BATCH_NICE)");
const gateway = await startGateway(config, logger, { readyRequiresCatalog: bool(process.env, "READY_REQUIRES_CATALOG", false) });
const shutdown = onShutdown(logger, config.shutdownGraceMs + 5_000, () => gateway.stoppers);
// Started by local mode: exit when the process that started us is gone (even SIGKILLed).
exitWithParent(() => shutdown("parent gone", { quiet: true }));
