/** Starts engine-sim from the environment; SIGTERM/SIGINT stop it through the shared shutdown helper. */
import { ConfigError, createLogger, exitWithParent, onShutdown } from "@infera/core";
import { loadConfig } from "./config.ts";
import { createEngineSim } from "./server.ts";

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig(process.env);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`engine-sim: ${err.message}\n`);
    process.exit(1);
  }
  throw err;
}

const logger = createLogger({ service: "engine-sim", level: config.logLevel ?? "info" });
const sim = createEngineSim(config);
const shutdown = onShutdown(logger, 10_000, () => [{ name: "http", stop: () => sim.stop() }]);
// Started by local mode: exit when the scheduler that started us is gone (even SIGKILLed).
exitWithParent(() => shutdown("parent gone", { quiet: true }));

await sim.start(config.port, config.host);
