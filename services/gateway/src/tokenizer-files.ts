/** Reading a Hugging Face tokenizer.json (path, file: or https: URL) and its tokenizer_config.json beside it. */
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BpeTable } from "./bpe-table.ts";

export interface TokenizerFiles {
  json: { model: object } & Record<string, unknown>;
  config: object;
}

/** What a worker hands back: the BPE tables and the tokenizer.json without vocabulary and merges (null: not a model `BpeTable` reproduces). */
export interface BuiltTokenizer {
  table: BpeTable | null;
  skeleton: TokenizerFiles["json"] | null;
  config: object;
}

export async function readTokenizerFiles(ref: string): Promise<TokenizerFiles> {
  const [json, config] = await Promise.all([readJson(ref), readJson(sibling(ref, "tokenizer_config.json")).catch(() => ({}))]);
  return { json: json as TokenizerFiles["json"], config: config as object };
}

/** The file without the model's vocabulary and merges: normaliser, pre-tokeniser, added tokens and flags, a few KB. */
export function skeletonOf(json: TokenizerFiles["json"]): TokenizerFiles["json"] {
  return { ...json, model: { ...json.model, vocab: {}, merges: [] } };
}

function sibling(ref: string, name: string): string {
  if (/^https?:/.test(ref)) return new URL(name, ref).toString();
  return join(dirname(ref.startsWith("file:") ? fileURLToPath(ref) : ref), name);
}

async function readJson(ref: string): Promise<unknown> {
  if (/^https?:/.test(ref)) {
    const res = await fetch(ref, { signal: AbortSignal.timeout(30_000) });
    if (!res.ok) throw new Error(`${ref}: HTTP ${res.status}`);
    return res.json();
  }
  return JSON.parse(await readFile(ref.startsWith("file:") ? fileURLToPath(ref) : ref, "utf8"));
}
