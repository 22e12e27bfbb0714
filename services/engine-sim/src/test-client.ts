/** What the tests use to talk to a running sim the way a client would: JSON posts and SSE reads. */
import { createEngineSim, type EngineSim } from "./server.ts";
import type { EngineSimOptions } from "./config.ts";

export async function startSim(options: EngineSimOptions = {}): Promise<EngineSim> {
  const sim = createEngineSim({ ttftMs: 0, itlMs: 0, prefillUsPerToken: 0, jitter: 0, logLevel: "silent", imageMs: 0, ...options });
  await sim.start(0, "127.0.0.1");
  return sim;
}

export async function postJson(url: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), ...init });
}

/** Reads a whole SSE body and returns its `data:` payloads in order (raw strings). */
export async function readSse(res: Response): Promise<string[]> {
  const text = await res.text();
  return parseSse(text);
}

export function parseSse(text: string): string[] {
  return text
    .split("\n\n")
    .filter((frame) => frame.length > 0)
    .map((frame) => {
      if (!frame.startsWith("data: ")) throw new Error(`not an SSE data frame: ${JSON.stringify(frame)}`);
      return frame.slice("data: ".length);
    });
}

/** Reads SSE frames as they arrive; `next()` resolves with the next frame, or null at the end. */
export function sseReader(res: Response): { next(timeoutMs?: number): Promise<string | null>; cancel(): Promise<void> } {
  if (res.body === null) throw new Error("no body");
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const frames: string[] = [];
  let ended = false;
  return {
    async next(timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (frames.length === 0 && !ended) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error("timeout waiting for an SSE frame");
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<"timeout">((resolve) => {
          timer = setTimeout(() => resolve("timeout"), left);
        });
        const read = await Promise.race([reader.read(), timeout]);
        clearTimeout(timer);
        if (read === "timeout") throw new Error("timeout waiting for an SSE frame");
        if (read.done) {
          ended = true;
          break;
        }
        buffer += decoder.decode(read.value, { stream: true });
        let at = buffer.indexOf("\n\n");
        while (at >= 0) {
          frames.push(buffer.slice(0, at).replace(/^data: /, ""));
          buffer = buffer.slice(at + 2);
          at = buffer.indexOf("\n\n");
        }
      }
      return frames.shift() ?? null;
    },
    async cancel() {
      await reader.cancel();
    },
  };
}

export async function simStats(sim: EngineSim): Promise<Record<string, unknown>> {
  const res = await fetch(`${sim.url}/sim/stats`);
  return (await res.json()) as Record<string, unknown>;
}

/** The value of one Prometheus sample (the first series whose line starts with `prefix`). */
export function metricValue(text: string, prefix: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(prefix));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}
