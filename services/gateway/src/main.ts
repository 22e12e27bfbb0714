import { bool, createLogger, exitWithParent, onShutdown } from "@infera/core";
import { loadConfig } from "./config.ts";
import { startGateway } from "./app.ts";

const config = loadConfig(process.env);
const logger = createLogger({ service: "gateway", level: config.logLevel }).child({ gatewayId: config.gatewayId });
const gateway = await startGateway(config, logger, { readyRequiresCatalog: bool(process.env, "READY_REQUIRES_CATALOG", false) });
const shutdown = onShutdown(logger, config.shutdownGraceMs + 5_000, () => gateway.stoppers);
// Started by local mode: exit when the process that started us is gone (even SIGKILLed).
exitWithParent(() => shutdown("parent gone", { quiet: true }));
