/**
 * Prompt token counts for tpm reservations and the fair queue's prompt charge: the model's
 * own tokenizer where the registry knows its Hugging Face `tokenizer.json` (loaded with
 * `@huggingface/tokenizers`, once per file, shared by every model that names it), else a
 * conservative bound.
 *
 * - Exact: texts up to `exactChars` (2,048) are encoded whole (~0.25 µs a character on a
 *   quiet core). A longer text is encoded for its first `exactChars` characters, and the rest
 *   is counted from four samples spread over it (their tokens per character, plus a 10%
 *   margin, never above the bound below): encoding 100k characters whole would hold the event
 *   loop ~50 ms. Counts are kept per text, short ones too (LRU, `cacheEntries`): a conversation resends its
 *   earlier messages and a system prompt or a short instruction repeats, so most texts are counted once.
 * - Bound: one token per UTF-8 byte. Byte-level BPE (GPT-2, Llama 3, Qwen …) and
 *   SentencePiece with byte fallback (Llama 2, Mistral …) never make a token of less than
 *   one byte, so this never undercounts; for English it is ~4× too high, and the reservation
 *   is settled to the engine's real count when the request ends.
 * - Chat: each message adds `PER_MESSAGE` tokens for the chat template's role markers.
 *
 * A tokenizer loads in the background (a first request meanwhile gets the bound); `preload`
 * loads the catalog's at start, before the gateway listens. It is built in a worker thread,
 * which hands back the BPE model as typed arrays (`bpe-table.ts`, ≈10 MB for Llama 3) and the
 * file without vocabulary and merges; the library built on the main thread kept ≈48 MB of live
 * heap and ≈115–170 MB of RSS (the heap the build grew, which V8 keeps).
 */
import { existsSync } from "node:fs";
import { Worker } from "node:worker_threads";
import { Tokenizer } from "@huggingface/tokenizers";
import type { Logger } from "@infera/core";
import { BpeCounter, fromModel, type BpeTable } from "./bpe-table.ts";
import { readTokenizerFiles, skeletonOf, type BuiltTokenizer, type TokenizerFiles } from "./tokenizer-files.ts";

/** Role header and end-of-turn markers per chat message (Llama 3: 5, ChatML: 5), rounded up. */
export const PER_MESSAGE = 8;
const SAMPLES = 4;
const SAMPLE_CHARS = 256;

export interface PromptCounter {
  /** Tokens of one text. */
  count(text: string): number;
  /** Whether this is the model's own tokenizer (false: the byte bound). */
  readonly exact: boolean;
}

/** The UTF-8 length of `s` without encoding it. */
export function utf8Bytes(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 2; // a surrogate pair: 4 bytes for 2 UTF-16 units
      i++;
    } else n += 2;
  }
  return n;
}

export const BOUND: PromptCounter = { count: utf8Bytes, exact: false };

/** Where the compiled bundle puts the worker, from this module's place (main.mjs, or a chunk in chunks/). */
const COMPILED_WORKER = ["tokenizer-worker.mjs", "../tokenizer-worker.mjs"];

/** Tokens of one text, as `tokenizer.encode(text, { add_special_tokens: false }).ids.length` counts them. */
type Encode = (text: string) => number;

const NO_TOKENS: readonly string[] = Object.freeze([]);
const WORD_CACHE = 10_000;

/**
 * The library's tokenizer built from the file without vocabulary and merges (its added tokens,
 * normaliser and pre-tokeniser as the file says), its model swapped for the BPE tables: the
 * library splits the text into words exactly as before and the tables count each word's tokens.
 */
function tableEncode(skeleton: TokenizerFiles["json"], config: object, table: BpeTable): Encode {
  const tokenizer = new Tokenizer(skeleton, config);
  const bpe = new BpeCounter(table);
  // Words seen before (the library keeps 10,000 too); emptied when full, so it stays ≈1 MB.
  const seen = new Map<string, number>();
  let words = 0;
  // `encode_text` calls the model with each section's words and keeps what it returns; added tokens are sections of their own.
  (tokenizer as unknown as { model: (w: string[]) => readonly string[] }).model = (w) => {
    for (const x of w) {
      let n = seen.get(x);
      if (n === undefined) {
        n = bpe.word(x);
        if (seen.size >= WORD_CACHE) seen.clear();
        seen.set(x, n);
      }
      words += n;
    }
    return NO_TOKENS;
  };
  return (text) => {
    words = 0;
    const added = tokenizer.tokenize(text).length;
    return added + words;
  };
}

class Exact implements PromptCounter {
  readonly exact = true;
  private readonly cache = new Map<string, number>();

  constructor(
    private readonly encode: Encode,
    private readonly exactChars: number,
    private readonly cacheEntries: number,
  ) {}

  count(text: string): number {
    // Short texts too: encoding even a few words costs 20–40 µs, a cache hit well under 1.
    const hit = this.cache.get(text);
    if (hit !== undefined) {
      this.cache.delete(text);
      this.cache.set(text, hit);
      return hit;
    }
    const n = this.uncached(text);
    this.cache.set(text, n);
    if (this.cache.size > this.cacheEntries) this.cache.delete(this.cache.keys().next().value as string);
    return n;
  }

  private uncached(text: string): number {
    if (text.length <= this.exactChars) return this.encode(text);
    const head = this.encode(text.slice(0, this.exactChars));
    const rest = text.length - this.exactChars;
    const step = Math.floor(rest / SAMPLES);
    let sampled = 0;
    let chars = 0;
    for (let i = 0; i < SAMPLES; i++) {
      const from = this.exactChars + i * step;
      const sample = text.slice(from, from + SAMPLE_CHARS);
      sampled += this.encode(sample);
      chars += sample.length;
    }
    const estimate = Math.ceil((sampled / Math.max(1, chars)) * rest * 1.1);
    return head + Math.min(estimate, utf8Bytes(text.slice(this.exactChars)));
  }
}

export interface TokenizersOptions {
  logger: Logger;
  /** Longest text encoded whole (default 2,048 characters, ~0.5 ms). */
  exactChars?: number;
  /** Texts whose counts are kept, per tokenizer (default 4,096). */
  cacheEntries?: number;
  /** Build each tokenizer in a worker thread (default: where one can start, see `buildInWorker`). */
  worker?: boolean;
}

/** Loaded tokenizers by `tokenizer.json` reference (path, file: or https: URL). */
export class Tokenizers {
  private readonly byRef = new Map<string, PromptCounter | Promise<void>>();
  private readonly exactChars: number;
  private readonly cacheEntries: number;

  constructor(private readonly o: TokenizersOptions) {
    this.exactChars = o.exactChars ?? 2048;
    this.cacheEntries = o.cacheEntries ?? 4096;
  }

  /** The counter for a model's tokenizer: its own once loaded (loading starts on first use), else the bound. */
  counter(ref: string | null): PromptCounter {
    if (!ref) return BOUND;
    const c = this.byRef.get(ref);
    if (c === undefined) {
      this.byRef.set(
        ref,
        this.load(ref).catch(() => {}),
      );
      return BOUND;
    }
    return c instanceof Promise ? BOUND : c;
  }

  /** Loads these now (start-up). A tokenizer that cannot be loaded is logged and counted by the bound. */
  async preload(refs: readonly string[]): Promise<void> {
    await Promise.all(
      [...new Set(refs)].map((ref) => {
        const c = this.byRef.get(ref);
        if (c instanceof Promise) return c;
        if (c !== undefined) return undefined;
        const p = this.load(ref).catch(() => {});
        this.byRef.set(ref, p);
        return p;
      }),
    );
  }

  private async load(ref: string): Promise<void> {
    const started = performance.now();
    try {
      const built =
        this.o.worker === false
          ? null
          : await buildInWorker(ref).catch((err: Error) => {
              this.o.logger.warn({ tokenizer: ref, err: err.message }, "tokenizer worker failed; building on the main thread");
              return null;
            });
      let encode: Encode;
      let how: string;
      if (built?.table && built.skeleton) {
        encode = tableEncode(built.skeleton, built.config, built.table);
        how = "worker, BPE tables";
      } else {
        const { json, config } = await readTokenizerFiles(ref);
        const tokenizer = new Tokenizer(json, config);
        const table = fromModel(tokenizer.model);
        if (table) {
          encode = tableEncode(skeletonOf(json), config, table);
          how = "main thread, BPE tables";
        } else {
          dropSourceTables(tokenizer, json);
          encode = (text) => tokenizer.encode(text, { add_special_tokens: false }).ids.length;
          how = "main thread, library model";
        }
      }
      this.byRef.set(ref, new Exact(encode, this.exactChars, this.cacheEntries));
      this.o.logger.info({ tokenizer: ref, ms: Math.round(performance.now() - started), how }, "tokenizer loaded");
    } catch (err) {
      this.byRef.set(ref, BOUND);
      this.o.logger.warn({ tokenizer: ref, err: (err as Error).message }, "tokenizer could not be loaded; counting prompt tokens by the byte bound");
      throw err;
    }
  }
}

/**
 * The tokenizer built in a worker thread (`tokenizer-worker.ts`), or null where none can
 * start: run from TypeScript (local mode, tests) the worker loads tsx's hooks first; the
 * images' compiled bundle carries it compiled, `tokenizer-worker.mjs` beside `main.mjs`
 * (`deploy/docker/bundle.mjs`; this code may sit in a chunk one folder below).
 */
export async function buildInWorker(ref: string): Promise<BuiltTokenizer | null> {
  let boot: string;
  if (import.meta.url.endsWith(".ts")) {
    let tsx: string;
    try {
      tsx = import.meta.resolve("tsx/esm/api");
    } catch {
      return null;
    }
    const entry = new URL("tokenizer-worker.ts", import.meta.url).href;
    boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`;
  } else {
    const compiled = COMPILED_WORKER.map((rel) => new URL(rel, import.meta.url)).find((u) => existsSync(u));
    if (!compiled) return null;
    boot = `import(${JSON.stringify(compiled.href)})`;
  }
  const worker = new Worker(boot, { eval: true, workerData: { ref } });
  try {
    const msg = await new Promise<BuiltTokenizer | { error: string }>((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
      worker.once("exit", (code) => reject(new Error(`tokenizer worker exited with ${code}`)));
    });
    if ("error" in msg) throw new Error(msg.error);
    return msg;
  } finally {
    await worker.terminate();
  }
}

/**
 * A BPE tokenizer keeps the parsed tokenizer.json beside the tables it built from it: the
 * vocabulary object (its Map `tokens_to_ids` holds the same) and the merges array (its Map
 * `bpe_ranks` holds the same), read only while it is constructed (@huggingface/tokenizers
 * 0.2). Dropping them halves a Llama 3 tokenizer's heap (94 → 48 MB). Other model kinds are left as they are.
 */
function dropSourceTables(tokenizer: Tokenizer, json: unknown): void {
  const model = (tokenizer as unknown as { model?: { bpe_ranks?: unknown; tokens_to_ids?: unknown; merges?: unknown } }).model;
  const source = (json as { model?: { vocab?: unknown; merges?: unknown } }).model;
  if (!model || !source || !(model.bpe_ranks instanceof Map) || !(model.tokens_to_ids instanceof Map)) return;
  model.merges = undefined;
  source.vocab = undefined;
  source.merges = undefined;
}
