/**
 * vLLM's OpenAI-compatible text API: /v1/chat/completions and /v1/completions, streamed
 * (SSE chunks, each token's text in its own chunk, `data: [DONE]` last) or answered as one
 * JSON body. Response shapes follow vLLM: ids `chatcmpl-…`/`cmpl-…`, `stop_reason` beside
 * `finish_reason`, usage only on request when streaming (a final chunk with `choices: []`).
 */
import type { SimContext } from "./context.ts";
import type { GenerationRun } from "./generation.ts";
import { tokenLogprobs, type TokenLogprob } from "./logprobs.ts";
import type { ChatRequest, CompletionRequest, ToolDef } from "./openai-request.ts";
import { resolveMaxTokens } from "./openai-request.ts";
import { type ChoicePlan, type Content, contentRng, planChoice } from "./plan.ts";
import { createRng, hashString, hexId, mix } from "./random.ts";
import { jsonObjectValue, valueForSchema } from "./structured.ts";
import { isSpecial } from "./tokenizer.ts";

const jsonCache = new Map<string, string>();
/** JSON string literal of a token's text (cached: the vocabulary of generated text is small). */
function jstr(s: string): string {
  let j = jsonCache.get(s);
  if (j === undefined) {
    j = JSON.stringify(s);
    if (jsonCache.size < 100_000) jsonCache.set(s, j);
  }
  return j;
}

const sse = (obj: unknown): string => `data: ${JSON.stringify(obj)}\n\n`;

interface Usage {
  prompt_tokens: number;
  total_tokens: number;
  completion_tokens: number;
  prompt_tokens_details: null;
}

function usageOf(promptTokens: number, plans: readonly ChoicePlan[]): Usage {
  const completion = plans.reduce((n, p) => n + p.tokens.length, 0);
  return { prompt_tokens: promptTokens, total_tokens: promptTokens + completion, completion_tokens: completion, prompt_tokens_details: null };
}

/** Continuous usage (vLLM): the usage object a chunk carries, cumulative through the steps generated so far. */
function usageTail(promptTokens: number, completion: number): string {
  return `,"usage":{"prompt_tokens":${promptTokens},"total_tokens":${promptTokens + completion},"completion_tokens":${completion}}`;
}

/** Tokens the choices generated in steps [0, to). */
function tokensThrough(plans: readonly ChoicePlan[], to: number): number {
  let n = 0;
  for (const p of plans) n += Math.min(to, p.tokens.length);
  return n;
}

/**
 * With continuous usage on, every frame of step s carries the usage through step s; when the
 * last steps of a batch wrote no frame (empty deltas), a usage-only chunk follows so that what
 * a reader saw last always equals what the engine counted.
 */
function withContinuousUsage(frames: (from: number, to: number) => string, plans: readonly ChoicePlan[], promptTokens: number, meta: string) {
  return (from: number, to: number): string => {
    let out = "";
    let last = -1;
    for (let s = from; s < to; s++) {
      const f = frames(s, s + 1);
      if (f.length === 0) continue;
      last = tokensThrough(plans, s + 1);
      out += f.replaceAll("]}\n\n", `]${usageTail(promptTokens, last)}}\n\n`);
    }
    const total = tokensThrough(plans, to);
    if (last !== total) out += `data: {${meta},"choices":[]${usageTail(promptTokens, total)}}\n\n`;
    return out;
  };
}

/** The tool to call, if the request makes the model call one. */
export function selectTool(req: ChatRequest): ToolDef | null {
  if (req.tools.length === 0 || req.toolChoice === "none") return null;
  const choice = req.toolChoice;
  if (typeof choice === "object") return req.tools.find((t) => t.name === choice.name) ?? null;
  const last = req.messages[req.messages.length - 1];
  const text = last?.role === "user" ? last.content.toLowerCase() : "";
  const mentioned = req.tools.find((t) => text.includes(t.name.toLowerCase())) ?? null;
  if (choice === "required") return mentioned ?? req.tools[0] ?? null;
  // "auto": call a tool when the user's last message asks for one.
  if (mentioned !== null) return mentioned;
  const asks = /\b(call|use|invoke|run)\b/.test(text) && /\b(tool|tools|function|functions)\b/.test(text);
  return asks ? (req.tools[0] ?? null) : null;
}

interface ChatChoice {
  index: number;
  plan: ChoicePlan;
  tool: { id: string; name: string } | null;
  finishReason: string;
  logprobs: TokenLogprob[] | null;
}

export function chatRun(ctx: SimContext, req: ChatRequest): GenerationRun {
  const maxTokens = resolveMaxTokens(ctx.config.maxModelLen, req.promptIds.length, req.maxTokens);
  const idRng = createRng(Math.floor(ctx.random() * 0x100000000));
  const id = `chatcmpl-${hexId(idRng, 32)}`;
  const created = Math.floor(Date.now() / 1000);
  const tool = selectTool(req);
  const choices: ChatChoice[] = [];
  for (let index = 0; index < req.n; index++) {
    const base = { promptKey: req.promptText, seed: req.seed, greedy: req.greedy, choiceIndex: index };
    let content: Content = { kind: "prose" };
    if (tool !== null) content = { kind: "text", text: JSON.stringify(valueForSchema(tool.parameters, contentRng(base, 1))) };
    else if (req.responseFormat.type === "json_object") content = { kind: "text", text: JSON.stringify(jsonObjectValue(contentRng(base, 1))) };
    else if (req.responseFormat.type === "json_schema")
      content = { kind: "text", text: JSON.stringify(valueForSchema(req.responseFormat.schema, contentRng(base, 1))) };
    else if (req.responseFormat.type === "choice") {
      const { choices } = req.responseFormat;
      content = { kind: "text", text: choices[Math.floor(contentRng(base, 1)() * choices.length)] ?? "" };
    }
    const plan = planChoice({
      ...base,
      maxTokens,
      minTokens: req.minTokens,
      stop: tool === null ? req.stop : [],
      ignoreEos: req.ignoreEos && tool === null,
      content,
    });
    const finishReason = tool !== null && plan.finishReason === "stop" ? "tool_calls" : plan.finishReason;
    const logprobs = req.logprobs ? tokenLogprobs(mix(hashString(req.promptText), req.seed, index, 77), plan.tokens, req.topLogprobs) : null;
    choices.push({ index, plan, tool: tool === null ? null : { id: `chatcmpl-tool-${hexId(idRng, 32)}`, name: tool.name }, finishReason, logprobs });
  }
  const plans = choices.map((c) => c.plan);
  const model = req.model;
  const head = `data: {"id":"${id}","object":"chat.completion.chunk","created":${created},"model":${jstr(model)},"choices":[`;
  const logprobEntry = (e: TokenLogprob): unknown => ({ token: e.token, logprob: e.logprob, bytes: e.bytes, top_logprobs: e.top });

  const frames = (from: number, to: number): string => {
    let out = "";
    for (let s = from; s < to; s++) {
      for (const c of choices) {
        const len = c.plan.tokens.length;
        if (s >= len) continue;
        const i = c.index;
        if (s === 0) {
          out += `${head}{"index":${i},"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n`;
          if (c.tool !== null) {
            const call = { index: 0, id: c.tool.id, type: "function", function: { name: c.tool.name, arguments: "" } };
            out += `${head}{"index":${i},"delta":{"tool_calls":[${JSON.stringify(call)}]},"logprobs":null,"finish_reason":null}]}\n\n`;
          }
        }
        const delta = c.plan.deltas[s] ?? "";
        if (delta.length > 0) {
          const d = c.tool !== null ? `{"tool_calls":[{"index":0,"function":{"arguments":${jstr(delta)}}}]}` : `{"content":${jstr(delta)}}`;
          const lp = c.logprobs?.[s];
          const lpJson = lp === undefined ? "null" : JSON.stringify({ content: [logprobEntry(lp)] });
          out += `${head}{"index":${i},"delta":${d},"logprobs":${lpJson},"finish_reason":null}]}\n\n`;
        }
        if (s === len - 1) {
          out += `${head}{"index":${i},"delta":{},"logprobs":null,"finish_reason":"${c.finishReason}","stop_reason":${c.plan.stopReason === null ? "null" : jstr(c.plan.stopReason)}}]}\n\n`;
        }
      }
    }
    return out;
  };

  const meta = `"id":"${id}","object":"chat.completion.chunk","created":${created},"model":${jstr(model)}`;
  return {
    promptTokenIds: req.promptIds,
    lengths: plans.map((p) => p.tokens.length),
    finishReasons: plans.map((p) => p.finishReason),
    stream: req.stream
      ? {
          done: true,
          frames: req.continuousUsage ? withContinuousUsage(frames, plans, req.promptIds.length, meta) : frames,
          end: () =>
            (req.includeUsage ? sse({ id, object: "chat.completion.chunk", created, model, choices: [], usage: usageOf(req.promptIds.length, plans) }) : "") +
            "data: [DONE]\n\n",
        }
      : null,
    body: req.stream
      ? null
      : {
          body: () => ({
            text: JSON.stringify({
              id,
              object: "chat.completion",
              created,
              model,
              choices: choices.map((c) => ({
                index: c.index,
                message:
                  c.tool === null
                    ? { role: "assistant", content: c.plan.text, tool_calls: [] }
                    : {
                        role: "assistant",
                        content: null,
                        tool_calls: [{ id: c.tool.id, type: "function", function: { name: c.tool.name, arguments: c.plan.text } }],
                      },
                logprobs: c.logprobs === null ? null : { content: c.logprobs.filter((_, s) => !isSpecial(c.plan.tokens[s] ?? 0)).map(logprobEntry) },
                finish_reason: c.finishReason,
                stop_reason: c.plan.stopReason,
              })),
              usage: usageOf(req.promptIds.length, plans),
              prompt_logprobs: null,
            }),
          }),
        },
  };
}

interface CompletionChoice {
  index: number;
  plan: ChoicePlan;
  echo: string;
  logprobs: TokenLogprob[] | null;
  promptLogprobs: TokenLogprob[] | null;
  promptIds: readonly number[];
}

/** OpenAI completions' logprobs object for a run of tokens. */
function completionLogprobs(entries: readonly { e: TokenLogprob; first: boolean }[], startOffset: number): unknown {
  const tokens: string[] = [];
  const tokenLps: (number | null)[] = [];
  const tops: (Record<string, number> | null)[] = [];
  const offsets: number[] = [];
  let offset = startOffset;
  for (const { e, first } of entries) {
    tokens.push(e.token);
    tokenLps.push(first ? null : e.logprob);
    tops.push(first ? null : Object.fromEntries(e.top.map((t) => [t.token, t.logprob])));
    offsets.push(offset);
    offset += e.token.length;
  }
  return { text_offset: offsets, token_logprobs: tokenLps, tokens, top_logprobs: tops };
}

export function completionRun(ctx: SimContext, req: CompletionRequest): GenerationRun {
  const idRng = createRng(Math.floor(ctx.random() * 0x100000000));
  const id = `cmpl-${hexId(idRng, 32)}`;
  const created = Math.floor(Date.now() / 1000);
  const choices: CompletionChoice[] = [];
  let promptTokens = 0;
  req.prompts.forEach((prompt, p) => {
    promptTokens += prompt.ids.length;
    const maxTokens = resolveMaxTokens(ctx.config.maxModelLen, prompt.ids.length, req.maxTokens);
    for (let i = 0; i < req.n; i++) {
      const plan = planChoice({
        promptKey: prompt.text,
        seed: req.seed,
        greedy: req.greedy,
        choiceIndex: i,
        maxTokens,
        minTokens: req.minTokens,
        stop: req.stop,
        ignoreEos: req.ignoreEos,
      });
      const topK = req.logprobs ?? 0;
      const lpSeed = mix(hashString(prompt.text), req.seed, i, 77);
      choices.push({
        index: p * req.n + i,
        plan,
        echo: req.echo ? prompt.text : "",
        logprobs: req.logprobs === null ? null : tokenLogprobs(lpSeed, plan.tokens, topK),
        promptLogprobs: req.logprobs !== null && req.echo ? tokenLogprobs(lpSeed + 1, prompt.ids, topK) : null,
        promptIds: prompt.ids,
      });
    }
  });
  const plans = choices.map((c) => c.plan);
  const model = req.model;
  const head = `data: {"id":"${id}","object":"text_completion","created":${created},"model":${jstr(model)},"choices":[`;
  // Per choice, the text offset of each generated token (for streamed logprobs).
  const offsets = choices.map((c) => {
    const out: number[] = [];
    let at = c.echo.length;
    for (const d of c.plan.deltas) {
      out.push(at);
      at += d.length;
    }
    return out;
  });

  const frames = (from: number, to: number): string => {
    let out = "";
    for (let s = from; s < to; s++) {
      for (const c of choices) {
        const len = c.plan.tokens.length;
        if (s >= len) continue;
        const i = c.index;
        if (s === 0 && c.echo.length > 0) {
          out += `${head}{"index":${i},"text":${jstr(c.echo)},"logprobs":null,"finish_reason":null,"stop_reason":null}]}\n\n`;
        }
        const delta = c.plan.deltas[s] ?? "";
        if (delta.length > 0) {
          const lp = c.logprobs?.[s];
          const lpJson = lp === undefined ? "null" : JSON.stringify(completionLogprobs([{ e: lp, first: false }], offsets[c.index]?.[s] ?? 0));
          out += `${head}{"index":${i},"text":${jstr(delta)},"logprobs":${lpJson},"finish_reason":null,"stop_reason":null}]}\n\n`;
        }
        if (s === len - 1) {
          out += `${head}{"index":${i},"text":"","logprobs":null,"finish_reason":"${c.plan.finishReason}","stop_reason":${c.plan.stopReason === null ? "null" : jstr(c.plan.stopReason)}}]}\n\n`;
        }
      }
    }
    return out;
  };

  const choiceBody = (c: CompletionChoice): unknown => {
    let logprobs: unknown = null;
    if (c.logprobs !== null) {
      const entries: { e: TokenLogprob; first: boolean }[] = [];
      c.promptLogprobs?.forEach((e, k) => {
        entries.push({ e, first: k === 0 });
      });
      c.logprobs.forEach((e, s) => {
        if (!isSpecial(c.plan.tokens[s] ?? 0)) entries.push({ e, first: false });
      });
      logprobs = completionLogprobs(entries, 0);
    }
    return { index: c.index, text: c.echo + c.plan.text, logprobs, finish_reason: c.plan.finishReason, stop_reason: c.plan.stopReason, prompt_logprobs: null };
  };

  const meta = `"id":"${id}","object":"text_completion","created":${created},"model":${jstr(model)}`;
  return {
    promptTokenIds: req.prompts.length === 1 ? (req.prompts[0]?.ids ?? []) : req.prompts.flatMap((p) => p.ids),
    lengths: plans.map((p) => p.tokens.length),
    finishReasons: plans.map((p) => p.finishReason),
    stream: req.stream
      ? {
          done: true,
          frames: req.continuousUsage ? withContinuousUsage(frames, plans, promptTokens, meta) : frames,
          end: () =>
            (req.includeUsage ? sse({ id, object: "text_completion", created, model, choices: [], usage: usageOf(promptTokens, plans) }) : "") +
            "data: [DONE]\n\n",
        }
      : null,
    body: req.stream
      ? null
      : {
          body: () => ({
            text: JSON.stringify({ id, object: "text_completion", created, model, choices: choices.map(choiceBody), usage: usageOf(promptTokens, plans) }),
          }),
        },
  };
}
