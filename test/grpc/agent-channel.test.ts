/**
 * The gateway → agent channel with TLS, real grpc-js on both ends: the gateway's own
 * `AgentClients` against the agent's own `AgentServer`, with certificates made by openssl.
 * Over TLS the gateway checks the agent's certificate (its CA, the release's server name, as
 * agents are dialled by pod IP); with a client CA the agent takes only gateways holding a
 * certificate it signed (mutual TLS); and the bearer token is still required inside.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { HealthRequestSchema } from "@infera/contracts";
import { makeClusterCerts } from "@infera/testkit";
import { AgentClients, type AgentTls } from "../../services/gateway/src/agents.ts";
import { createLogger } from "../../packages/core/src/logger.ts";
import { AgentServer } from "../../services/worker-agent/src/server.ts";
import { VllmAdapter } from "../../services/worker-agent/src/engine/vllm.ts";
import { createAgentMetrics } from "../../services/worker-agent/src/metrics.ts";

const TOKEN = "agent-channel-test-token-0123456789abcdefgh";
const dirs: string[] = [];
const servers: AgentServer[] = [];
const clients: AgentClients[] = [];
let ours: ReturnType<typeof makeClusterCerts>;
let theirs: ReturnType<typeof makeClusterCerts>;
const read = (f: string) => readFileSync(f);

function certs() {
  const dir = mkdtempSync(join(tmpdir(), "infera-agent-tls-"));
  dirs.push(dir);
  return makeClusterCerts(dir);
}

/** An agent on a free loopback port: TLS with the CA's serving certificate (127.0.0.1, localhost), optionally requiring client certificates. */
async function agent(o: { mutual?: boolean } = {}): Promise<string> {
  const server = new AgentServer({
    adapter: new VllmAdapter("http://127.0.0.1:1"),
    logger: createLogger({ service: "agent", level: "silent" }),
    metrics: createAgentMetrics(),
    replicaId: "r-tls",
    authToken: TOKEN,
    tls: { cert: read(ours.apiserverCert), key: read(ours.apiserverKey), clientCa: o.mutual ? read(ours.caCert) : undefined },
  });
  servers.push(server);
  return `127.0.0.1:${await server.start("127.0.0.1", 0)}`;
}

/** Health through the gateway's client: the gRPC status it ends with. */
function health(token: string | undefined, tls: AgentTls | undefined, address: string): Promise<number> {
  const c = new AgentClients(token, tls);
  clients.push(c);
  return new Promise((resolve) =>
    c
      .get(address)
      .health(create(HealthRequestSchema, {}), new grpc.Metadata(), { deadline: Date.now() + 3_000 }, (err) => resolve(err?.code ?? grpc.status.OK)),
  );
}

beforeAll(() => {
  ours = certs();
  theirs = certs();
});

afterAll(async () => {
  for (const c of clients) c.stop();
  for (const s of servers) s.forceStop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("gateway → agent over TLS", () => {
  it("with the agent's CA and name, and the token: served", async () => {
    const address = await agent();
    expect(await health(TOKEN, { ca: read(ours.caCert), serverName: "localhost" }, address)).toBe(grpc.status.OK);
  });

  it("a plaintext client, another CA, or another name: no connection", async () => {
    const address = await agent();
    expect(await health(TOKEN, undefined, address)).toBe(grpc.status.UNAVAILABLE);
    expect(await health(TOKEN, { ca: read(theirs.caCert), serverName: "localhost" }, address)).toBe(grpc.status.UNAVAILABLE);
    expect(await health(TOKEN, { ca: read(ours.caCert), serverName: "infera-agent" }, address)).toBe(grpc.status.UNAVAILABLE);
  });

  it("over TLS the token is still required: UNAUTHENTICATED without it", async () => {
    const address = await agent();
    expect(await health(undefined, { ca: read(ours.caCert), serverName: "localhost" }, address)).toBe(grpc.status.UNAUTHENTICATED);
  });

  it("mutual TLS: a gateway without a client certificate, or with one another CA signed, is refused; with the CA's, served", async () => {
    const address = await agent({ mutual: true });
    const base = { ca: read(ours.caCert), serverName: "localhost" };
    expect(await health(TOKEN, base, address)).toBe(grpc.status.UNAVAILABLE);
    expect(await health(TOKEN, { ...base, cert: read(theirs.adminCert), key: read(theirs.adminKey) }, address)).toBe(grpc.status.UNAVAILABLE);
    expect(await health(TOKEN, { ...base, cert: read(ours.adminCert), key: read(ours.adminKey) }, address)).toBe(grpc.status.OK);
  });
});
