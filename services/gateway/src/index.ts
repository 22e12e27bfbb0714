export { startGateway, type RunningGateway } from "./app.ts";
export { loadConfig, type GatewayConfig } from "./config.ts";
export { createGatewayMetrics } from "./metrics.ts";
