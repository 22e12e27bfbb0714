import type { EngineAdapter, EngineKind } from "./adapter.ts";
import { ImageAdapter } from "./image.ts";
import { TeiAdapter } from "./tei.ts";
import { TgiAdapter } from "./tgi.ts";
import { VllmAdapter } from "./vllm.ts";

export function createAdapter(kind: EngineKind, engineUrl: string): EngineAdapter {
  switch (kind) {
    case "vllm":
      return new VllmAdapter(engineUrl);
    case "tgi":
      return new TgiAdapter(engineUrl);
    case "tei":
      return new TeiAdapter(engineUrl);
    case "image":
      return new ImageAdapter(engineUrl);
  }
}
