import type { Kysely } from "kysely";
import type { DB } from "@infera/registry";
import type { KeyCache } from "./auth.ts";
import type { ModelResolver } from "./resolver.ts";
import type { Tokenizers } from "./prompt-tokens.ts";
import type { BlobStore } from "@infera/storage";
import type { JobQueues } from "@infera/jobs";

/** What route modules share: narrow, no container. */
export interface GatewayContext {
  db: Kysely<DB>;
  keys: KeyCache;
  resolver: ModelResolver;
  /** Prompt token counts by the model's own tokenizer (routes that reserve tokens). */
  tokenizers: Tokenizers;
  /** Days a stored response (Responses API) is kept; default 30. */
  responsesRetentionDays?: number;
  /** File bodies (Files API): local disk or S3. */
  blobs: BlobStore;
  /** Limits on an uploaded file. */
  files: { maxBytes: number; maxLines: number; maxLineBytes: number };
  /** Background jobs (BullMQ): the Batch API announces batches and cancels on it. */
  jobs: JobQueues;
  /** Mount point of a route group (`/v1/openai` or `/v1`). */
  prefix: string;
}
