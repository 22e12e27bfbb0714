/**
 * gRPC clients to worker agents, one channel per address, reused across requests. Every call
 * carries the release's agent token (AGENT_AUTH_TOKEN): agents refuse calls without it.
 */
import * as grpc from "@grpc/grpc-js";
import { AgentService, agentAuthInterceptor, clientConstructor, type ServiceMethods, type TypedClient } from "@infera/contracts";

const AgentClient = clientConstructor(AgentService);
export type AgentClientT = TypedClient<ServiceMethods<typeof AgentService>>;

export interface AgentTls {
  ca: Buffer;
  serverName: string;
  cert?: Buffer;
  key?: Buffer;
}

export class AgentClients {
  private readonly clients = new Map<string, AgentClientT>();
  private readonly interceptors: grpc.Interceptor[];
  private readonly credentials: grpc.ChannelCredentials;
  private readonly tlsOptions: grpc.ChannelOptions;

  /**
   * `authToken`: the agents' token; without one, calls go out bare and token-checking agents
   * refuse them. `tls`: dial agents over TLS, trusting `ca`; agents are dialled by pod IP, so
   * their certificate is checked for `serverName`; `cert`/`key`: this gateway's client certificate.
   */
  constructor(authToken: string | undefined, tls?: AgentTls) {
    this.interceptors = authToken ? [agentAuthInterceptor(authToken)] : [];
    this.credentials = tls ? grpc.credentials.createSsl(tls.ca, tls.key ?? null, tls.cert ?? null) : grpc.credentials.createInsecure();
    this.tlsOptions = tls ? { "grpc.ssl_target_name_override": tls.serverName, "grpc.default_authority": tls.serverName } : {};
  }

  get(address: string): AgentClientT {
    let c = this.clients.get(address);
    if (!c) {
      c = new AgentClient(address, this.credentials, {
        ...this.tlsOptions,
        "grpc.keepalive_time_ms": 10_000,
        "grpc.keepalive_timeout_ms": 5_000,
        "grpc.keepalive_permit_without_calls": 1,
        "grpc.max_receive_message_length": 64 * 1024 * 1024,
        // HTTP/2's default 64 KiB connection window is shared by every stream to the agent (a
        // thousand at once): more in flight lets a busy gateway read more tokens per read.
        "grpc-node.flow_control_window": 1024 * 1024,
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
