/**
 * Deterministic log-probabilities for generated tokens: the sampled token is the most likely
 * one, alternatives are common tokens with lower log-probabilities.
 */
import { type Rng, createRng } from "./random.ts";
import { encode, isSpecial, tokenText } from "./tokenizer.ts";

export interface TopLogprob {
  token: string;
  logprob: number;
  bytes: number[];
}

export interface TokenLogprob extends TopLogprob {
  top: TopLogprob[];
}

const ALTERNATIVE_WORDS = [
  " the",
  " a",
  " and",
  " of",
  " to",
  " in",
  " is",
  ",",
  ".",
  " it",
  " that",
  " for",
  " on",
  " with",
  " as",
  " was",
  " this",
  " be",
  " by",
  " at",
];
let alternatives: number[] | null = null;
function alternativeIds(): number[] {
  alternatives ??= ALTERNATIVE_WORDS.map((w) => encode(w)[0] ?? 0);
  return alternatives;
}

const encoder = new TextEncoder();
export const utf8Bytes = (s: string): number[] => Array.from(encoder.encode(s));

const round = (x: number): number => Math.round(x * 1e4) / 1e4;

function entry(token: string, logprob: number): TopLogprob {
  return { token, logprob, bytes: utf8Bytes(token) };
}

/** Logprobs for `ids` (special tokens get none and are skipped by callers), `topK` alternatives each. */
export function tokenLogprobs(seed: number, ids: readonly number[], topK: number): TokenLogprob[] {
  const rng: Rng = createRng(seed);
  const alts = alternativeIds();
  return ids.map((id) => {
    const text = isSpecial(id) ? "" : tokenText(id);
    const lp = round(-(rng() ** 2) * 1.5 - 0.0001);
    const top: TopLogprob[] = [];
    if (topK > 0) {
      top.push(entry(text, lp));
      let prev = lp;
      let offset = Math.floor(rng() * alts.length);
      while (top.length < topK) {
        const alt = alts[offset++ % alts.length] as number;
        if (alt === id) continue;
        prev = round(prev - 0.5 - rng() * 2.5);
        top.push(entry(tokenText(alt), prev));
      }
    }
    return { token: text, logprob: lp, bytes: utf8Bytes(text), top };
  });
}
