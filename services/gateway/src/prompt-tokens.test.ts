import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { Tokenizer } from "@huggingface/tokenizers";
import { createLogger } from "@infera/core";
import { LLAMA3_TOKENIZER } from "@infera/registry";
import { describe, expect, it } from "vitest";
import { Tokenizers } from "./prompt-tokens.ts";

const require = createRequire(new URL("../../../deploy/local/package.json", import.meta.url));
// The demo catalog's tokenizer, installed with local mode (deploy/local).
const ref = require.resolve(LLAMA3_TOKENIZER);

describe("Tokenizers", () => {
  it("counts with the loaded tokenizer exactly what the tokenizer built from the whole file counts", async () => {
    const tokenizers = new Tokenizers({ logger: createLogger({ service: "test", level: "silent" }) });
    await tokenizers.preload([ref]);
    const counter = tokenizers.counter(ref);
    expect(counter.exact).toBe(true);
    const whole = new Tokenizer(JSON.parse(readFileSync(ref, "utf8")) as object, {});
    const texts = [
      "Hello, world!",
      "The quick brown fox jumps over the lazy dog; numbers like 12345 and words like ünïcödé or 日本語 too. ".repeat(8),
      readFileSync(new URL("../../../README.md", import.meta.url), "utf8").slice(0, 2000),
      "  leading spaces, tabs\tand\nnew lines, emoji 🦙🦙 and <|begin_of_text|> as text",
    ];
    for (const text of texts) expect(counter.count(text)).toBe(whole.encode(text, { add_special_tokens: false }).ids.length);
  });
});
