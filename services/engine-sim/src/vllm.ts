/** vLLM's small endpoints beside generation: /v1/models, /version, /tokenize, /detokenize. */
import type { SimContext } from "./context.ts";
import { SimError } from "./errors.ts";
import { isRecord } from "./http.ts";
import { checkModel } from "./openai-request.ts";
import { applyChatTemplate, decode, encode, tokenText } from "./tokenizer.ts";
import { type Body, optBool } from "./validate.ts";

export const VLLM_VERSION = "0.11.0";

export function modelList(ctx: SimContext, ownedBy: string): unknown {
  const created = Math.floor(Date.now() / 1000);
  return {
    object: "list",
    data: ctx.config.models.map((id) => ({
      id,
      object: "model",
      created,
      owned_by: ownedBy,
      root: ctx.config.models[0],
      parent: null,
      max_model_len: ctx.config.maxModelLen,
      permission: [
        {
          id: `modelperm-${id.length}${created}`,
          object: "model_permission",
          created,
          allow_create_engine: false,
          allow_sampling: true,
          allow_logprobs: true,
          allow_search_indices: false,
          allow_view: true,
          allow_fine_tuning: false,
          organization: "*",
          group: null,
          is_blocking: false,
        },
      ],
    })),
  };
}

/** POST /tokenize: `{prompt}` or `{messages}` → `{count, max_model_len, tokens, token_strs}`. */
export function vllmTokenize(ctx: SimContext, body: Body): unknown {
  checkModel(ctx.config, body);
  let ids: readonly number[];
  if (typeof body.prompt === "string") {
    ids = encode(body.prompt, { bos: optBool(body, "add_special_tokens") ?? true });
  } else if (Array.isArray(body.messages)) {
    const messages = body.messages.map((m, i) => {
      if (!isRecord(m) || typeof m.role !== "string") throw new SimError("invalid_request", `messages[${i}]: a message needs a string role`, "messages");
      return { role: m.role, content: typeof m.content === "string" ? m.content : "" };
    });
    ids = encode(applyChatTemplate(messages));
  } else {
    throw new SimError("invalid_request", "Either `prompt` or `messages` is required", "prompt");
  }
  const strs = optBool(body, "return_token_strs") === true ? ids.map(tokenText) : null;
  return { count: ids.length, max_model_len: ctx.config.maxModelLen, tokens: ids, token_strs: strs };
}

/** POST /detokenize: `{tokens}` → `{prompt}`. */
export function vllmDetokenize(ctx: SimContext, body: Body): unknown {
  checkModel(ctx.config, body);
  const tokens = body.tokens;
  if (!Array.isArray(tokens) || !tokens.every((t): t is number => Number.isInteger(t) && (t as number) >= 0)) {
    throw new SimError("invalid_request", "tokens: Input should be a list of token ids", "tokens");
  }
  return { prompt: decode(tokens) };
}
