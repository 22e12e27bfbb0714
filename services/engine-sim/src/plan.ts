/**
 * What one sequence (one choice) will generate, decided up front: token ids, the text each
 * token adds, and why it ends. The scheduler only decides *when* tokens come out.
 * Deterministic: the RNG is seeded from the prompt text, the seed and (unless greedy) the
 * choice index.
 */
import { type Rng, createRng, hashString, mix, randInt } from "./random.ts";
import { EOT_ID, encode, tokenText } from "./tokenizer.ts";
import { generateProseTokens } from "./text.ts";

export type FinishReason = "stop" | "length";

export type Content =
  | { kind: "prose" }
  /** Fixed text (JSON output, tool-call arguments): tokenized, then EOS. */
  | { kind: "text"; text: string };

export interface PlanSpec {
  /** The text the output is derived from (the templated prompt). */
  promptKey: string;
  seed: number;
  /** Greedy sampling (temperature 0): every choice is the same. */
  greedy: boolean;
  choiceIndex: number;
  maxTokens: number;
  minTokens?: number;
  stop?: readonly string[];
  /** TGI keeps the stop sequence in the text; vLLM drops it. */
  includeStopInOutput?: boolean;
  ignoreEos?: boolean;
  content?: Content;
}

export interface ChoicePlan {
  /** Every generated token id; EOS (`<|eot_id|>`) is the last one when the model ended by itself. */
  tokens: number[];
  /** Text each token adds to the output; their concatenation is `text`. */
  deltas: string[];
  text: string;
  finishReason: FinishReason;
  /** vLLM's stop_reason: the matched stop string, else null. */
  stopReason: string | null;
  endedWithEos: boolean;
}

/** The RNG a choice's content is drawn from. */
export function contentRng(spec: Pick<PlanSpec, "promptKey" | "seed" | "greedy" | "choiceIndex">, salt = 0): Rng {
  return createRng(mix(hashString(spec.promptKey), spec.seed, spec.greedy ? 0 : spec.choiceIndex + 1, salt));
}

export function planChoice(spec: PlanSpec): ChoicePlan {
  const rng = contentRng(spec);
  const maxTokens = Math.max(0, spec.maxTokens);
  const minTokens = Math.min(spec.minTokens ?? 0, maxTokens);
  const content = spec.content ?? { kind: "prose" };
  // The "natural" length: the model emits EOS after roughly this many tokens.
  const natural = Math.max(minTokens, randInt(rng, 16, 256));
  let body: readonly number[];
  if (content.kind === "text") body = encode(content.text);
  else body = generateProseTokens(rng, spec.ignoreEos === true ? maxTokens : natural, maxTokens);

  const stops = (spec.stop ?? []).filter((s) => s.length > 0);
  const tokens: number[] = [];
  const ends: number[] = []; // cumulative text length after each token
  let text = "";
  let finishReason: FinishReason = "length";
  let stopReason: string | null = null;
  let endedWithEos = false;
  let cut = -1;

  for (const id of body) {
    if (tokens.length >= maxTokens) break;
    const before = text.length;
    text += tokenText(id);
    tokens.push(id);
    ends.push(text.length);
    if (stops.length > 0 && tokens.length >= minTokens) {
      let best = -1;
      let bestStop = "";
      for (const s of stops) {
        const at = text.indexOf(s, Math.max(0, before - s.length + 1));
        if (at >= 0 && (best < 0 || at < best)) {
          best = at;
          bestStop = s;
        }
      }
      if (best >= 0) {
        cut = spec.includeStopInOutput === true ? best + bestStop.length : best;
        finishReason = "stop";
        stopReason = bestStop;
        break;
      }
    }
  }
  if (cut < 0 && tokens.length < maxTokens && spec.ignoreEos !== true && (content.kind === "text" || tokens.length >= natural)) {
    tokens.push(EOT_ID);
    ends.push(text.length);
    finishReason = "stop";
    endedWithEos = true;
  }
  const finalLength = cut >= 0 ? cut : text.length;
  const deltas: string[] = new Array<string>(tokens.length);
  let prev = 0;
  for (let i = 0; i < tokens.length; i++) {
    const end = Math.min(ends[i] ?? 0, finalLength);
    deltas[i] = end > prev ? text.slice(prev, end) : "";
    prev = Math.max(prev, end);
  }
  return { tokens, deltas, text: text.slice(0, finalLength), finishReason, stopReason, endedWithEos };
}
