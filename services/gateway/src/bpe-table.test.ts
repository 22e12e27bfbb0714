import { Tokenizer } from "@huggingface/tokenizers";
import { describe, expect, it } from "vitest";
import { BpeCounter, fromModel } from "./bpe-table.ts";

/** A small BPE tokenizer.json: whitespace words, no byte-level alphabet (so symbols can be outside the vocabulary). */
function tiny(model: Record<string, unknown>): Tokenizer {
  const vocab: Record<string, number> = {};
  for (const t of ["a", "b", "c", "ab", "bc", "abc", "aa", "aaa", "aaaa", "🦙", "🦙a", "x"]) vocab[t] = Object.keys(vocab).length;
  const merges = ["a b", "b c", "a bc", "a a", "aa a", "aa aa", "a a", "🦙 a"];
  return new Tokenizer(
    {
      model: { type: "BPE", vocab, merges, unk_token: null, ignore_merges: false, ...model },
      normalizer: null,
      pre_tokenizer: { type: "WhitespaceSplit" },
      post_processor: null,
      decoder: null,
      added_tokens: [{ id: 100, content: "<s>", special: true, normalized: false, lstrip: false, rstrip: false, single_word: false }],
    },
    {},
  );
}

const WORDS = ["abc", "aaaaaaa", "abcabc", "cab", "zzz", "a🦙a", "🦙aab", "aaz", "x", "aaaa", "<s>", "ab", "q🦙"];

function compare(t: Tokenizer): void {
  const table = fromModel(t.model);
  expect(table).not.toBeNull();
  const counter = new BpeCounter(table!);
  for (const w of WORDS) {
    const lib = (t.model as unknown as (words: string[]) => string[])([w]).length;
    expect([w, counter.word(w)]).toEqual([w, lib]);
  }
}

describe("BpeCounter", () => {
  it("counts a word's tokens as the library's BPE model does: repeated merges keep the last rank, unknown symbols dropped", () => compare(tiny({})));
  it("with an unknown token each unknown symbol counts one", () => compare(tiny({ unk_token: "x" })));
  it("with ignore_merges a word in the vocabulary is one token", () => compare(tiny({ ignore_merges: true })));
  it("leaves to the library what it does not reproduce", () => {
    expect(fromModel(tiny({ byte_fallback: true }).model)).toBeNull();
    expect(fromModel(tiny({ end_of_word_suffix: "</w>" }).model)).toBeNull();
    expect(fromModel(tiny({ merges: ["a q"] }).model)).toBeNull();
  });
});
