/**
 * Deterministic English-looking text from a seeded RNG: a tiny grammar over built-in word
 * lists ("The quiet engine reads a small table near the river."), produced directly as
 * Llama 3 token ids so every token's text is known and counts match the tokenizer.
 */
import { type Rng, pick } from "./random.ts";
import { encode } from "./tokenizer.ts";

const DETERMINERS = ["the", "a", "every", "this", "that", "one", "each", "some"] as const;
const ADJECTIVES = [
  "quiet",
  "small",
  "bright",
  "careful",
  "early",
  "gentle",
  "large",
  "modern",
  "patient",
  "simple",
  "steady",
  "strong",
  "warm",
  "clever",
  "distant",
  "famous",
  "green",
  "happy",
  "honest",
  "little",
  "new",
  "old",
  "open",
  "quick",
  "rare",
  "silent",
  "slow",
  "smart",
  "soft",
  "tall",
  "useful",
  "young",
] as const;
const NOUNS = [
  "engine",
  "model",
  "river",
  "garden",
  "city",
  "teacher",
  "student",
  "window",
  "story",
  "system",
  "market",
  "library",
  "mountain",
  "village",
  "doctor",
  "team",
  "letter",
  "table",
  "bridge",
  "forest",
  "computer",
  "question",
  "answer",
  "journey",
  "painter",
  "record",
  "signal",
  "planet",
  "kitchen",
  "road",
  "friend",
  "company",
  "message",
  "network",
  "morning",
  "island",
  "castle",
  "engineer",
  "picture",
  "idea",
] as const;
const VERBS = [
  "reads",
  "builds",
  "finds",
  "carries",
  "writes",
  "watches",
  "follows",
  "opens",
  "moves",
  "holds",
  "shares",
  "studies",
  "paints",
  "answers",
  "checks",
  "remembers",
  "explains",
  "visits",
  "helps",
  "changes",
  "counts",
  "sends",
  "keeps",
  "takes",
  "brings",
  "meets",
  "improves",
  "describes",
  "measures",
  "joins",
] as const;
const PREPOSITIONS = ["near", "behind", "under", "beside", "across", "around", "before", "after", "inside", "beyond"] as const;
const CONJUNCTIONS = ["and", "while", "because", "so", "but"] as const;

/** Token ids per word form, computed once: " word" (mid-sentence) and "Word"/" Word" (sentence start). */
const wordTokens = new Map<string, readonly number[]>();
function tokensOf(piece: string): readonly number[] {
  let ids = wordTokens.get(piece);
  if (ids === undefined) {
    ids = encode(piece);
    wordTokens.set(piece, ids);
  }
  return ids;
}

const capitalise = (w: string): string => w.charAt(0).toUpperCase() + w.slice(1);

/** Streams word pieces of sentences; call `next()` for the following piece. */
class SentenceSource {
  private queue: string[] = [];
  private first = true;
  constructor(private readonly rng: Rng) {}

  /** The next piece (a word with its leading space, or punctuation) and whether it ends a sentence. */
  next(): { piece: string; endsSentence: boolean } {
    if (this.queue.length === 0) this.fillSentence();
    const piece = this.queue.shift() as string;
    return { piece, endsSentence: piece === "." };
  }

  private phrase(): string[] {
    const words: string[] = [pick(this.rng, DETERMINERS)];
    if (this.rng() < 0.6) words.push(pick(this.rng, ADJECTIVES));
    words.push(pick(this.rng, NOUNS));
    return words;
  }

  private clause(): string[] {
    const words = [...this.phrase(), pick(this.rng, VERBS), ...this.phrase()];
    if (this.rng() < 0.5) words.push(pick(this.rng, PREPOSITIONS), ...this.phrase());
    return words;
  }

  private fillSentence(): void {
    const words = this.clause();
    if (this.rng() < 0.3) {
      words.push(",", pick(this.rng, CONJUNCTIONS), ...this.clause());
    }
    words.push(".");
    words.forEach((w, i) => {
      if (w === "," || w === ".") this.queue.push(w);
      else if (i === 0) this.queue.push((this.first ? "" : " ") + capitalise(w));
      else this.queue.push(" " + w);
    });
    this.first = false;
  }
}

/**
 * Token ids of generated prose: at least `minTokens` tokens, ending at a sentence end once
 * `minTokens` is reached, but never more than `limit` tokens (then it may stop mid-sentence).
 */
export function generateProseTokens(rng: Rng, minTokens: number, limit: number): number[] {
  const source = new SentenceSource(rng);
  const out: number[] = [];
  while (out.length < limit) {
    const { piece, endsSentence } = source.next();
    for (const id of tokensOf(piece)) {
      if (out.length >= limit) break;
      out.push(id);
    }
    if (endsSentence && out.length >= minTokens) break;
  }
  return out;
}

/** A few words of prose as a plain string (used for JSON string values). */
export function shortPhrase(rng: Rng, words: number): string {
  const source = new SentenceSource(rng);
  const parts: string[] = [];
  while (parts.length < words) {
    const { piece } = source.next();
    if (piece === "," || piece === ".") continue;
    parts.push(piece.trim().toLowerCase());
  }
  return parts.join(" ");
}
