/**
 * What counting prompt tokens costs per request (`pnpm bench:tokens`): Llama 3's
 * tokenizer.json through `Tokenizers` (exact up to 2,048 characters, sampled beyond; a text
 * seen before comes from the cache), the byte bound, and the old estimate (characters / 4 of
 * at most 8,192), on prompts of several sizes, in one run. Prints median and p99 per call in
 * microseconds, and the counts.
 */
import { createRequire } from "node:module";
import { createLogger } from "@infera/core";
import { LLAMA3_TOKENIZER } from "@infera/registry";
import { BOUND, Tokenizers } from "./prompt-tokens.ts";

const require = createRequire(new URL("../../../deploy/local/package.json", import.meta.url));
// The demo catalog's tokenizer, installed with local mode (deploy/local).
const ref = require.resolve(LLAMA3_TOKENIZER);
const tokenizers = new Tokenizers({ logger: createLogger({ service: "bench", level: "silent" }) });
const rssBefore = process.memoryUsage().rss;
const loadStart = performance.now();
await tokenizers.preload([ref]);
const loadMs = performance.now() - loadStart;
const exact = tokenizers.counter(ref);
const rssAfter = process.memoryUsage().rss;

const SENTENCE = "The quick brown fox jumps over the lazy dog; numbers like 12345 and words like ünïcödé or 日本語 too. ";
const oldEstimate = (s: string) => Math.ceil(Math.min(s.length, 8192) / 4);

function time(fn: (s: string) => number, text: string, iterations: number, repeat = false): { p50: number; p99: number; count: number } {
  const samples: number[] = [];
  let count = 0;
  for (let i = 0; i < iterations; i++) {
    // A different string each time (no cache can answer it), unless measuring the repeat; then a
    // fresh copy of the same text, as each request's JSON parse makes one.
    const s = repeat ? JSON.parse(JSON.stringify(`x ${text}`)) : `${i} ${text}`;
    const t = performance.now();
    count = fn(s);
    samples.push((performance.now() - t) * 1000);
  }
  samples.sort((a, b) => a - b);
  return { p50: samples[Math.floor(samples.length / 2)]!, p99: samples[Math.floor(samples.length * 0.99)]!, count };
}

console.log(`tokenizer load ${loadMs.toFixed(0)} ms, RSS +${((rssAfter - rssBefore) / 1e6).toFixed(0)} MB`);
console.log("chars\tcounter\tp50 µs\tp99 µs\ttokens");
for (const chars of [200, 1_000, 4_000, 8_000, 30_000, 100_000]) {
  const text = SENTENCE.repeat(Math.ceil(chars / SENTENCE.length)).slice(0, chars);
  const iterations = chars >= 30_000 ? 100 : 500;
  for (const [name, fn] of [
    ["chars/4 (old)", oldEstimate],
    ["byte bound", BOUND.count],
    ["llama3 exact", (s: string) => exact.count(s)],
    ["llama3 seen before", (s: string) => exact.count(s)],
  ] as const) {
    const r = time(fn, text, iterations, name === "llama3 seen before");
    console.log(`${chars}\t${name}\t${r.p50.toFixed(1)}\t${r.p99.toFixed(1)}\t${r.count}`);
  }
}
