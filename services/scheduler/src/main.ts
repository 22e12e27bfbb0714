import { createLogger, exitWithParent, onShutdown } from "@infera/core";
import { loadConfig } from "./config.ts";
import { startScheduler } from "./scheduler.ts";
import { createDriver } from "./runtime/index.ts";

const config = loadConfig(process.env);
const logger = createLogger({ service: "scheduler", level: config.logLevel });
const driver = await createDriver(config, logger);
const scheduler = await startScheduler(config, logger, driver);
const shutdown = onShutdown(logger, config.shutdownGraceMs + 10_000, () => scheduler.stoppers);
// Started by local mode: exit when the process that started us is gone (even SIGKILLed).
exitWithParent(() => shutdown("parent gone", { quiet: true }));
