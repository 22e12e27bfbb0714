/** The OpenAI embeddings request as adapters see it, and its base64 vector encoding. */

export interface EmbeddingBody {
  model: string;
  input: string | string[] | number[] | number[][];
  encoding_format?: "float" | "base64";
  dimensions?: number;
  user?: string;
  truncate_prompt_tokens?: number | null;
  add_special_tokens?: boolean | null;
}

/** `input` as a list: one string, strings, one token-id list, or token-id lists. */
export function embeddingInputs(input: EmbeddingBody["input"]): (string | number[])[] {
  if (typeof input === "string") return [input];
  if (input.length > 0 && typeof input[0] === "number") return [input as number[]];
  return input as (string | number[])[];
}

/** OpenAI's `encoding_format: "base64"`: the vector's little-endian float32 bytes. */
export function floatsToBase64(v: readonly number[]): string {
  const buf = Buffer.alloc(v.length * 4);
  for (let i = 0; i < v.length; i++) buf.writeFloatLE(v[i] as number, i * 4);
  return buf.toString("base64");
}
