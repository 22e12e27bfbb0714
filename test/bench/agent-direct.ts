/**
 * The floor of the design: the same request sent straight to a replica's worker agent over
 * gRPC, as the gateway calls it (`Generate`, one channel per agent, the release's agent
 * token), with no gateway, queue or scheduler in between. What it adds over engine-sim
 * direct is what one gRPC hop and the agent's relay cost; what the whole platform adds over
 * it is everything else.
 */
import { create } from "@bufbuild/protobuf";
import { Endpoint, GenerateRequestSchema, type GenerateResponse } from "@infera/contracts";
import { AgentClients } from "../../services/gateway/src/agents.ts";
import { type CallOptions, type CallResult, EventClock } from "./load.ts";
import type { BenchPlatform } from "./platform.ts";

export interface AgentDirect {
  /** Sends `body` (an engine body: `model` the served name) to agent `i % agents`. */
  send(i: number, body: string, o: CallOptions): Promise<CallResult>;
  stop(): void;
}

/** Agent-direct calls to every replica of `model` on platform `p`. */
export function agentDirect(p: BenchPlatform, model: string): AgentDirect {
  const clients = new AgentClients(p.agentAuthToken);
  const agents = p.replicas.filter((r) => r.model === model).map((r) => clients.get(r.agentAddress));
  if (agents.length === 0) throw new Error(`no agent serves ${model}`);
  let seq = 0;
  return {
    stop: () => clients.stop(),
    send: (i, body, o) =>
      new Promise<CallResult>((resolve) => {
        const t0 = performance.now();
        const clock = new EventClock(t0, o.keepGaps ? [] : undefined);
        let usage = false;
        let error: string | undefined;
        const c = agents[i % agents.length]!.generate(
          create(GenerateRequestSchema, {
            requestId: `bench-agent-${process.pid}-${seq++}`,
            endpoint: Endpoint.CHAT_COMPLETIONS,
            body: Buffer.from(body),
            stream: o.stream,
            tenantId: "bench",
          }),
        );
        const seen = (n: number) => {
          o.onEvents?.(n);
          clock.seen(n);
        };
        c.on("data", (ev: GenerateResponse) => {
          const e = ev.event;
          if (e.case === "chunk") seen(1);
          else if (e.case === "chunks") seen(e.value.items.length);
          else if (e.case === "usage") usage = true;
          else if (e.case === "error") error = `engine error ${e.value.status}: ${e.value.message}`;
        });
        const done = (err?: string) => {
          const ms = performance.now() - t0;
          const ok = err === undefined && error === undefined && usage;
          resolve({
            ok,
            status: ok ? 200 : 0,
            // Non-streamed: the whole answer, as the HTTP load generator counts it.
            firstMs: o.stream ? clock.first : ms,
            totalMs: ms,
            events: clock.events,
            gaps: clock.gaps,
            maxGapMs: clock.maxGap,
            error: ok ? undefined : (err ?? error ?? "the call ended without usage"),
          });
        };
        c.on("error", (err: Error) => done(err.message));
        c.on("end", () => done());
      }),
  };
}
