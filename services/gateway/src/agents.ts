/**
 * gRPC clients to worker agents, one channel per address, reused across requests. Every call
 * carries the release's agent token (AGENT_AUTH_TOKEN): agents refuse calls without it.
 */
import * as grpc from "@grpc/grpc-js";
import { AgentService, agentAuthInterceptor, clientConstructor, type ServiceMethods, type TypedClient } from "@infera/contracts";

const AgentClient = clientConstructor(AgentService);
export type AgentClientT = TypedClient<ServiceMethods<typeof AgentService>>;

export class AgentClients {
  private readonly clients = new Map<string, AgentClientT>();
  private readonly interceptors: grpc.Interceptor[];

  /** `authToken`: the agents' token; without one, calls go out bare and token-checking agents refuse them. */
  constructor(authToken: string | undefined) {
    this.interceptors = authToken ? [agentAuthInterceptor(authToken)] : [];
  }

  get(address: string): AgentClientT {
    let c = this.clients.get(address);
    if (!c) {
      c = new AgentClient(address, grpc.credentials.createInsecure(), {
        "grpc.keepalive_time_ms": 10_000,
        "grpc.keepalive_timeout_ms": 5_000,
        "grpc.keepalive_permit_without_calls": 1,
        "grpc.max_receive_message_length": 64 * 1024 * 1024,
        // Reconnect fast after an agent restarts.
        "grpc.initial_reconnect_backoff_ms": 100,
        "grpc.max_reconnect_backoff_ms": 2_000,
        interceptors: this.interceptors,
      });
      this.clients.set(address, c);
    }
    return c;
  }

  stop(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
