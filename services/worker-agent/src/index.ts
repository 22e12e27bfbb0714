export { startAgent, type RunningAgent } from "./agent.ts";
export { loadConfig, type AgentConfig } from "./config.ts";
export { createAgentMetrics } from "./metrics.ts";
