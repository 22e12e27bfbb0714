/**
 * Token counting and token-by-token decoding with the real Llama 3 tokenizer
 * (llama3-tokenizer-js). Special-token strings in text (`<|eot_id|>`, `<|begin_of_text|>` …)
 * are encoded as their single special token ids, as Hugging Face's tokenizer does.
 */
import llama3Tokenizer from "llama3-tokenizer-js";

export const EOT_ID = 128009; // <|eot_id|>: the end of an assistant turn, what Llama 3 Instruct stops on
export const FIRST_SPECIAL_ID = 128000;

const ENCODE_CACHE_LIMIT = 2048;
const ENCODE_CACHE_MAX_CHARS = 64 * 1024;
const encodeCache = new Map<string, readonly number[]>();
const textById = new Map<number, string>();

/**
 * Token ids of `text`. `bos` prepends `<|begin_of_text|>` unless the text already starts with
 * it (so a prompt carrying its own template is not double-BOS'd). Results are LRU-cached:
 * benchmarks send the same prompt thousands of times.
 */
export function encode(text: string, options: { bos?: boolean } = {}): readonly number[] {
  const bos = options.bos === true && !text.startsWith("<|begin_of_text|>");
  const key = (bos ? "1" : "0") + text;
  const cached = encodeCache.get(key);
  if (cached !== undefined) {
    encodeCache.delete(key);
    encodeCache.set(key, cached);
    return cached;
  }
  const ids = llama3Tokenizer.encode(text, { bos, eos: false });
  if (text.length <= ENCODE_CACHE_MAX_CHARS) {
    encodeCache.set(key, ids);
    if (encodeCache.size > ENCODE_CACHE_LIMIT) {
      const oldest = encodeCache.keys().next();
      if (oldest.done !== true) encodeCache.delete(oldest.value);
    }
  }
  return ids;
}

export function decode(ids: readonly number[]): string {
  return llama3Tokenizer.decode([...ids]);
}

/** The text of one token, as a streaming detokenizer emits it (cached per id). */
export function tokenText(id: number): string {
  let text = textById.get(id);
  if (text === undefined) {
    text = llama3Tokenizer.decode([id]);
    textById.set(id, text);
  }
  return text;
}

export function isSpecial(id: number): boolean {
  return id >= FIRST_SPECIAL_ID;
}

export interface ChatTemplateMessage {
  role: string;
  content: string;
}

/**
 * Llama 3 Instruct's chat template: `<|begin_of_text|>` then per message
 * `<|start_header_id|>role<|end_header_id|>\n\n` + trimmed content + `<|eot_id|>`, then the
 * assistant header as the generation prompt. Tool definitions are not rendered.
 */
export function applyChatTemplate(messages: readonly ChatTemplateMessage[]): string {
  let out = "<|begin_of_text|>";
  for (const m of messages) {
    out += `<|start_header_id|>${m.role}<|end_header_id|>\n\n${m.content.trim()}<|eot_id|>`;
  }
  return out + "<|start_header_id|>assistant<|end_header_id|>\n\n";
}
