/**
 * Reads the engine's load from its Prometheus /metrics: vLLM's
 * vllm:num_requests_running / vllm:num_requests_waiting / vllm:kv_cache_usage_perc,
 * or TGI's tgi_batch_current_size / tgi_queue_size.
 */
import type { EngineLoad } from "./adapter.ts";

const SERIES: Record<string, keyof EngineLoad> = {
  "vllm:num_requests_running": "running",
  "vllm:num_requests_waiting": "waiting",
  "vllm:kv_cache_usage_perc": "kvCacheUsage",
  tgi_batch_current_size: "running",
  tgi_queue_size: "waiting",
};

export function parseEngineLoad(text: string): EngineLoad | undefined {
  const load: EngineLoad = { running: 0, waiting: 0, kvCacheUsage: 0 };
  let seen = false;
  for (const line of text.split("\n")) {
    if (line.length === 0 || line.charCodeAt(0) === 35 /* # */) continue;
    const brace = line.indexOf("{");
    const space = line.lastIndexOf(" ");
    const name = line.slice(0, brace === -1 ? line.indexOf(" ") : brace);
    const field = SERIES[name];
    if (!field) continue;
    const value = Number(line.slice(space + 1));
    if (!Number.isFinite(value)) continue;
    load[field] += value;
    seen = true;
  }
  return seen ? load : undefined;
}
