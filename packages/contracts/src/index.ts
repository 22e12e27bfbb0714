export * from "./gen/infera/agent/v1/agent_pb.ts";
export * from "./grpc.ts";
export * from "./names.ts";
export * from "./redis-keys.ts";
export * from "./replica-report.ts";
export * from "./gpu-types.ts";
export * from "./runtime-view.ts";
export * from "./agent-auth.ts";
