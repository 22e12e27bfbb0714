import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { Tokenizer } from "@huggingface/tokenizers";
import { createLogger } from "@infera/core";
import { LLAMA3_TOKENIZER } from "@infera/registry";
import { describe, expect, it } from "vitest";
import { buildInWorker, Tokenizers } from "./prompt-tokens.ts";

const require = createRequire(new URL("../../../deploy/local/package.json", import.meta.url));
// The demo catalog's tokenizer, installed with local mode (deploy/local).
const ref = require.resolve(LLAMA3_TOKENIZER);
const read = (path: string) => readFileSync(new URL(path, import.meta.url), "utf8");

/** Texts up to the exact limit (2,048 characters): prose, code, markup, unicode, added tokens as text, odd whitespace. */
function texts(): string[] {
  const sources = [read("../../../README.md"), read("./prompt-tokens.ts"), read("./bpe-table.ts"), read("../../../docs/architecture.md")];
  const out = [
    "",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog; numbers like 12345 and words like ünïcödé or 日本語 too. ".repeat(8),
    "  leading spaces, tabs\tand\nnew lines, emoji 🦙🦙 and <|begin_of_text|> as text",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|reserved_special_token_7|>x",
    "Ελληνικά, русский, العربية, עברית, हिन्दी, 한국어, ไทย, Tiếng Việt, 👩‍👩‍👧‍👦 🏳️‍🌈 e\u0301 \u200b\ufeff",
    "a".repeat(2048),
    "9".repeat(1000) + "x".repeat(500),
    "\r\n\r\n\n\n    \t\t  end",
    "don't I'LL we'VE they'd it's ’s",
    "\ud83e lone surrogates \udc00 here",
  ];
  for (const s of sources) for (let i = 0; i < s.length; i += 331) out.push(s.slice(i, i + 1 + ((i * 7) % 2047)));
  return out;
}

describe("Tokenizers", () => {
  const whole = new Tokenizer(
    JSON.parse(readFileSync(ref, "utf8")) as object,
    JSON.parse(readFileSync(ref.replace(/tokenizer\.json$/, "tokenizer_config.json"), "utf8")) as object,
  );
  const library = (text: string) => whole.encode(text, { add_special_tokens: false }).ids.length;

  for (const worker of [true, false]) {
    it(`counts every text exactly as the library's tokenizer built from the whole file (built ${worker ? "in a worker" : "on the main thread"})`, async () => {
      const tokenizers = new Tokenizers({ logger: createLogger({ service: "test", level: "silent" }), worker });
      await tokenizers.preload([ref]);
      const counter = tokenizers.counter(ref);
      expect(counter.exact).toBe(true);
      const all = texts();
      expect(all.length).toBeGreaterThan(100);
      const wrong = all.filter((t) => counter.count(t) !== library(t));
      expect(wrong).toEqual([]);
    }, 60_000);
  }

  it("the worker hands over the BPE tables and a file without vocabulary or merges", async () => {
    const built = await buildInWorker(ref);
    expect(built?.table?.ids.length).toBe(128_256);
    expect(JSON.stringify(built?.skeleton).length).toBeLessThan(100_000);
  }, 60_000);
});
