/**
 * The lifecycle of one generation request, shared by every text API: submit to the engine,
 * stream frames as tokens come due (or answer once at the end), inject mid-stream faults, and
 * abort at once when the client goes away.
 */
import type { ServerResponse } from "node:http";
import type { SimContext } from "./context.ts";
import type { JobTiming } from "./engine.ts";
import { SimError, streamErrorFrame } from "./errors.ts";
import type { FaultKind } from "./faults.ts";
import { sendText, startSse, writeChunk } from "./http.ts";

export interface StreamWriter {
  /** SSE frames for steps [from, to). */
  frames(from: number, to: number): string;
  /** Frames after the last step (finish, usage, `[DONE]` where the API has it). */
  end(): string;
  /** Whether the API ends a stream with `data: [DONE]` (vLLM and the Messages API do; TGI's /generate_stream does not). */
  done: boolean;
}

export interface BodyWriter {
  body(timing: JobTiming): { text: string; headers?: Record<string, string> };
}

export interface GenerationRun {
  promptTokenIds: readonly number[];
  lengths: readonly number[];
  finishReasons: readonly string[];
  stream: StreamWriter | null;
  body: BodyWriter | null;
}

/** Faults that happen after the request was accepted. */
const MID_STREAM: readonly FaultKind[] = ["disconnect", "stall", "stream_error"];

export function runGeneration(ctx: SimContext, res: ServerResponse, run: GenerationRun, fault: FaultKind | null): void {
  const midFault = fault !== null && MID_STREAM.includes(fault) ? fault : null;
  const steps = Math.max(0, ...run.lengths);
  let ended = false;
  const { stream, body } = run;

  const ticket = ctx.engine.submit({
    lengths: run.lengths,
    finishReasons: run.finishReasons,
    promptTokenIds: run.promptTokenIds,
    streaming: stream !== null,
    stallAtStep: midFault === null ? undefined : Math.floor(steps / 2),
    onTokens(from, to) {
      if (stream === null) return;
      const text = stream.frames(from, to);
      if (text.length > 0) writeChunk(res, text);
    },
    onFinish(timing) {
      ended = true;
      if (stream !== null) {
        res.end(stream.end());
      } else if (body !== null) {
        const out = body.body(timing);
        sendText(res, 200, out.text, { "content-type": "application/json", ...out.headers });
      }
    },
    onStall() {
      // Deferred: this may run inside submit(), before `ticket` exists.
      setImmediate(() => {
        if (ended) return;
        if (midFault === "disconnect") {
          res.destroy();
        } else if (midFault === "stream_error") {
          ended = true;
          ticket?.cancel();
          ctx.counters.failed++;
          const frame = streamErrorFrame(ctx.flavor, "Simulated engine error during generation");
          if (stream !== null) res.end(frame + (stream.done ? "data: [DONE]\n\n" : ""));
          else sendText(res, 500, frame.slice(6, -2), { "content-type": "application/json" });
        }
        // "stall": keep the connection open and send nothing more, until the client gives up.
      });
    },
  });
  if (ticket === null) {
    throw new SimError("overloaded", "Model is overloaded");
  }
  if (stream !== null) startSse(res);
  const abort = (): void => {
    if (!ended) {
      ended = true;
      ticket.cancel();
    }
  };
  // A client that half-closes (FIN) is gone too. Stopping here, synchronously, means every
  // token counted was written before the server's own FIN: a reader that drains to EOF saw
  // exactly what the engine counted (the agent's graceful cancel relies on it).
  const socket = res.socket;
  if (socket?.readableEnded)
    abort(); // the FIN came while the body was being read
  else socket?.once("end", abort);
  res.once("close", () => {
    socket?.off("end", abort);
    abort();
  });
}
