/**
 * The body an engine gets: the validated request less what the gateway applies or ignores
 * (`request-fields.ts`), with the served model name, the deprecated `functions` /
 * `function_call` and OpenAI's `allowed_tools` turned into what engines understand, and
 * stream usage always asked for (the agent needs the engine's counts; the client sees them
 * as it asked). One pass over the body's own keys.
 */
import type { EngineKind } from "@infera/contracts";
import type { ChatCompletionRequest, CompletionRequest, EmbeddingRequest } from "./openai-schema.ts";
import { CHAT_FIELDS, COMPLETION_FIELDS, EMBEDDING_FIELDS, engineFields } from "./request-fields.ts";

const CHAT = engineFields(CHAT_FIELDS);
const COMPLETION = engineFields(COMPLETION_FIELDS);
const EMBEDDING = engineFields(EMBEDDING_FIELDS);

function pick(body: object, keep: ReadonlySet<string>, model: string): Record<string, unknown> {
  const out: Record<string, unknown> = { model };
  for (const [k, v] of Object.entries(body)) if (k !== "model" && keep.has(k)) out[k] = v;
  return out;
}

function streamUsage(out: Record<string, unknown>, engine: EngineKind): void {
  if (out.stream === true) out.stream_options = engine === "vllm" ? { include_usage: true, continuous_usage_stats: true } : { include_usage: true };
  else delete out.stream_options;
}

export function chatEngineBody(body: ChatCompletionRequest, servedName: string, engine: EngineKind): Record<string, unknown> {
  const out = pick(body, CHAT, servedName);
  streamUsage(out, engine);
  if (body.functions) {
    out.tools = body.functions.map((f) => ({ type: "function", function: f }));
    if (body.function_call !== undefined) {
      out.tool_choice = typeof body.function_call === "string" ? body.function_call : { type: "function", function: { name: body.function_call.name } };
    }
  }
  const choice = body.tool_choice;
  if (typeof choice === "object" && choice.type === "allowed_tools") {
    const allowed = new Set(
      choice.allowed_tools.tools
        .map((t) => (t.function as { name?: unknown } | undefined)?.name ?? (t as { name?: unknown }).name)
        .filter((n) => typeof n === "string"),
    );
    out.tools = (body.tools ?? []).filter((t) => t.type === "function" && allowed.has(t.function.name));
    out.tool_choice = choice.allowed_tools.mode;
  }
  // Deprecated function-role messages are tool results to engines that only know tools.
  if (body.messages.some((m) => m.role === "function")) {
    out.messages = body.messages.map((m) => (m.role === "function" ? { role: "tool", content: m.content ?? "", tool_call_id: m.name } : m));
  }
  return out;
}

export function completionEngineBody(body: CompletionRequest, servedName: string, engine: EngineKind): Record<string, unknown> {
  const out = pick(body, COMPLETION, servedName);
  streamUsage(out, engine);
  if (out.prompt === null) out.prompt = "";
  return out;
}

export function embeddingEngineBody(body: EmbeddingRequest, servedName: string): Record<string, unknown> {
  return pick(body, EMBEDDING, servedName);
}
