/** Starts engine-sim from the environment; SIGTERM/SIGINT close the server and exit. */
import { ConfigError, exitWithParent } from "@infera/core";
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

const sim = createEngineSim(config);

let stopping = false;
const shutdown = (signal: string): void => {
  if (stopping) return;
  stopping = true;
  const deadline = setTimeout(() => process.exit(1), 10_000);
  deadline.unref();
  sim.stop().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`engine-sim: error while stopping on ${signal}: ${String(err)}\n`);
      process.exit(1);
    },
  );
};
process.once("SIGTERM", () => shutdown("SIGTERM"));
process.once("SIGINT", () => shutdown("SIGINT"));
// Started by local mode: exit when the scheduler that started us is gone (even SIGKILLed).
exitWithParent(() => shutdown("parent gone"));

await sim.start(config.port, config.host);
