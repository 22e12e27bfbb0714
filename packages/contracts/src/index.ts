export * from "./gen/infera/agent/v1/agent_pb.ts";
export * from "./grpc.ts";
export * from "./jobs.ts";
export * from "./gpu-types.ts";
