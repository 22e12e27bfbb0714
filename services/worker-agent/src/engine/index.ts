import type { EngineAdapter, EngineKind } from "./adapter.ts";
import { VllmAdapter } from "./vllm.ts";

export function createAdapter(kind: EngineKind, engineUrl: string): EngineAdapter {
  switch (kind) {
    case "vllm":
      return new VllmAdapter(engineUrl);
    default:
      throw new Error(`ENGINE_KIND ${kind} has no adapter yet`);
  }
}
