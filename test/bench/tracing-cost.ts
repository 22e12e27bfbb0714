/**
 * `pnpm bench:tracing`: what the gateway's spans cost per request in CPU, measured in one
 * process so the figure does not depend on what else the machine runs: the four spans a
 * request makes in the gateway (request, admission, queue wait, agent call) with their
 * attributes, with tracing off (the pass-through) and on (the SDK, batched OTLP/HTTP
 * protobuf export to a sink in another process, so only the exporting side is counted).
 * Requests come at about 5,000/s, so the batch exporter keeps up and drops nothing.
 */
import { createLogger } from "@infera/core";
import { noTracing, startTracing, type Tracing, tracingConfig } from "@infera/telemetry";
import { startOtlpSink } from "./otlp-sink.ts";

const sink = await startOtlpSink();

const log = createLogger({ service: "bench", level: "silent" });
const on = await startTracing(tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: sink.endpoint, OTEL_BSP_SCHEDULE_DELAY: "200" }, "bench"), log);
const TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

function request(t: Tracing): void {
  const root = t.start("chat m", {
    parent: TP,
    kind: "server",
    startTime: performance.now(),
    attributes: {
      "gen_ai.operation.name": "chat",
      "gen_ai.request.model": "meta-llama/Meta-Llama-3-8B-Instruct",
      "gen_ai.provider.name": "vllm",
      "http.request.method": "POST",
      "http.route": "/v1/openai/chat/completions",
      "infera.request.id": "req_0123456789abcdef01234567",
      "infera.tenant.id": "ten_0123456789abcdef",
      "infera.tenant.tier": "standard",
      "infera.deployment.id": "dep_0123456789abcdef",
      "infera.stream": true,
    },
  });
  if (t.enabled) t.start("infera.gateway.admission", { parent: root }).end();
  const q = t.start("infera.queue.wait", {
    parent: root,
    kind: "producer",
    attributes: { "messaging.system": "redis", "infera.deployment.id": "dep_0123456789abcdef", "infera.queue.priority": "standard", "infera.queue.attempt": 0 },
  });
  void q.traceparent;
  q.setAttributes({ "infera.replica.id": "dep_0123456789abcdef-r1", "infera.scheduler.id": "sched-1" });
  q.end();
  const c = t.start("infera.agent.v1.AgentService/Generate", {
    parent: root,
    kind: "client",
    attributes: { "rpc.system": "grpc", "rpc.service": "infera.agent.v1.AgentService", "rpc.method": "Generate", "server.address": "127.0.0.1:50051" },
  });
  void c.traceparent;
  c.end();
  root.setAttributes({
    "http.response.status_code": 200,
    "gen_ai.usage.input_tokens": 12,
    "gen_ai.usage.output_tokens": 80,
    "gen_ai.response.finish_reasons": ["stop"],
  });
  root.end();
}

async function run(t: Tracing, n: number): Promise<number> {
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    request(t);
    if (i % 50 === 49) await new Promise((r) => setTimeout(r, 10));
  }
  // Let the last batches leave.
  await new Promise((r) => setTimeout(r, 600));
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / n;
}

const N = 20_000;
for (const [name, t] of [
  ["off", noTracing],
  ["on", on],
] as const) {
  await run(t, 2000); // warm-up
  console.log(`tracing ${name}: ${(await run(t, N)).toFixed(1)} µs CPU per request (the gateway's spans${name === "on" ? ", export included" : ""})`);
}
await on.stop();
console.log(`exported ${await sink.stop()} bytes (${N + 2000} traced requests)`);
