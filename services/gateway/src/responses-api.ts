/**
 * OpenAI's Responses API, translated onto the chat path: a Responses request becomes the chat
 * completion request the engines serve (`toChat`), and the chat answer — whole or streamed — is
 * rewritten into a Response object or the Responses event sequence by `ResponsesWriter`, which
 * stands in for the HTTP response the chat pipeline writes to. The pipeline itself (admission,
 * queue, agent call, retries, cancellation, usage) is the chat one, unchanged.
 */
import type { ServerResponse } from "node:http";
import { randomBytes } from "node:crypto";
import { PlatformError } from "@infera/core";
import { errorBody } from "./errors.ts";
import type { ChatCompletionRequest } from "./openai-schema.ts";

type Item = Record<string, unknown>;

/** The Responses request as the route's schema lets it through (items are checked here, naming the field). */
export interface ResponsesRequest {
  model: string;
  input: string | Item[];
  instructions?: string | null;
  tools?: Item[];
  tool_choice?: string | Item;
  text?: { format?: Item; verbosity?: string | null };
  max_output_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  top_logprobs?: number | null;
  max_tool_calls?: number | null;
  metadata?: Record<string, string> | null;
  store?: boolean | null;
  stream?: boolean | null;
  previous_response_id?: string | null;
  user?: string;
  safety_identifier?: string;
  parallel_tool_calls?: boolean | null;
  prompt_cache_key?: string;
  service_tier?: string | null;
  truncation?: string | null;
  include?: string[] | null;
  reasoning?: Item | null;
  background?: boolean | null;
  stream_options?: Item | null;
  conversation?: string | Item | null;
  prompt?: Item | null;
  context_management?: Item[] | null;
}

export function newId(prefix: string): string {
  return `${prefix}_${randomBytes(24).toString("hex")}`;
}

const bad = (message: string, param: string) => new PlatformError("invalid_request", message, { param });

/** A text part's text (input_text / output_text / text), or a 400 naming it. */
function partText(p: unknown, param: string): string {
  const part = p as Item;
  if (part && (part.type === "input_text" || part.type === "output_text" || part.type === "text") && typeof part.text === "string") return part.text;
  if (part && part.type === "refusal" && typeof part.refusal === "string") return part.refusal;
  throw bad(`Content part type '${String(part?.type)}' is not supported here; use 'input_text' or 'output_text'.`, `${param}.type`);
}

/** An `item_reference` input item (its `type` may be left out: then it is an id alone). */
const isReference = (raw: Item) => raw.type === "item_reference" || (raw.type == null && raw.role === undefined && typeof raw.id === "string");

/** The ids the request's `item_reference` items name, to be looked up among the tenant's stored items. */
export function referencedIds(input: string | Item[]): string[] {
  if (typeof input === "string") return [];
  return input
    .filter(isReference)
    .map((r) => r.id)
    .filter((id): id is string => typeof id === "string");
}

/**
 * The request's `input` as stored items, each with an id (messages `msg_…`, function calls
 * `fc_…`, their outputs `fco_…`), every one checked: an `item_reference` is replaced by the
 * stored item it names (`referenced`; one not there is a 404 naming it), and what is not a
 * message, function_call or function_call_output is a 400 naming it.
 */
export function inputItems(input: string | Item[], referenced: ReadonlyMap<string, Item> = new Map()): Item[] {
  if (typeof input === "string")
    return [{ id: newId("msg"), type: "message", role: "user", status: "completed", content: [{ type: "input_text", text: input }] }];
  return input.map((given, i) => {
    const param = `input[${i}]`;
    let raw = given;
    if (isReference(given)) {
      if (typeof given.id !== "string") throw bad("An item_reference needs 'id' (a string).", `${param}.id`);
      const item = referenced.get(given.id);
      if (!item) throw new PlatformError("not_found", `Item with id '${given.id}' not found.`, { param: `${param}.id` });
      raw = item;
    }
    const type = raw.type ?? "message";
    if (type === "message") {
      const role = raw.role;
      if (role !== "user" && role !== "assistant" && role !== "system" && role !== "developer") {
        throw bad(`Invalid role '${String(role)}': expected 'user', 'assistant', 'system' or 'developer'.`, `${param}.role`);
      }
      const c = raw.content;
      let content: Item[];
      const textType = role === "assistant" ? "output_text" : "input_text";
      if (typeof c === "string") content = [role === "assistant" ? { type: textType, text: c, annotations: [] } : { type: textType, text: c }];
      else if (Array.isArray(c) && c.length > 0) {
        content = c.map((p, j) => {
          const part = p as Item;
          if (part?.type === "input_image" && role !== "assistant") {
            if (typeof part.image_url !== "string") throw bad("An input_image needs 'image_url' (a URL or data URL).", `${param}.content[${j}].image_url`);
            return { type: "input_image", image_url: part.image_url, detail: part.detail ?? "auto" };
          }
          const text = partText(part, `${param}.content[${j}]`);
          return role === "assistant" ? { type: "output_text", text, annotations: [] } : { type: "input_text", text };
        });
      } else throw bad("A message's 'content' must be a string or a non-empty array of content parts.", `${param}.content`);
      return { id: typeof raw.id === "string" ? raw.id : newId("msg"), type: "message", role, status: "completed", content };
    }
    if (type === "function_call") {
      for (const f of ["call_id", "name", "arguments"]) {
        if (typeof raw[f] !== "string") throw bad(`A function_call item needs '${f}' (a string).`, `${param}.${f}`);
      }
      return {
        id: typeof raw.id === "string" ? raw.id : newId("fc"),
        type: "function_call",
        status: "completed",
        call_id: raw.call_id,
        name: raw.name,
        arguments: raw.arguments,
      };
    }
    if (type === "function_call_output") {
      if (typeof raw.call_id !== "string") throw bad("A function_call_output item needs 'call_id' (a string).", `${param}.call_id`);
      let output = raw.output;
      if (Array.isArray(output)) output = output.map((p, j) => partText(p, `${param}.output[${j}]`)).join("");
      if (typeof output !== "string") throw bad("A function_call_output item needs 'output' (a string).", `${param}.output`);
      return { id: typeof raw.id === "string" ? raw.id : newId("fco"), type: "function_call_output", status: "completed", call_id: raw.call_id, output };
    }
    if (type === "reasoning") {
      // A reasoning model's item, carried back by SDKs that replay a conversation: kept among the
      // input items, not shown to the model (encrypted content is another provider's; the models here
      // reason in their text, if at all).
      if (!Array.isArray(raw.summary)) throw bad("A reasoning item needs 'summary' (an array).", `${param}.summary`);
      const summary = raw.summary.map((p, j) => {
        const part = p as Item;
        if (part?.type !== "summary_text" || typeof part.text !== "string") {
          throw bad("A reasoning summary part needs type 'summary_text' and 'text'.", `${param}.summary[${j}]`);
        }
        return { type: "summary_text", text: part.text };
      });
      return { id: typeof raw.id === "string" ? raw.id : newId("rs"), type: "reasoning", summary };
    }
    throw bad(
      `Input item type '${String(type)}' is not supported; use 'message', 'function_call', 'function_call_output', 'reasoning' or 'item_reference'.`,
      `${param}.type`,
    );
  });
}

/** The conversation's items as chat messages: consecutive function calls become one assistant message's tool_calls. */
function chatMessages(instructions: string | null | undefined, items: Item[]): ChatCompletionRequest["messages"] {
  const out: Record<string, unknown>[] = [];
  if (instructions) out.push({ role: "system", content: instructions });
  for (const it of items) {
    if (it.type === "message") {
      const parts = it.content as Item[];
      const role = it.role === "developer" ? "system" : (it.role as string);
      if (role === "user" && parts.some((p) => p.type === "input_image")) {
        out.push({
          role,
          content: parts.map((p) =>
            p.type === "input_image" ? { type: "image_url", image_url: { url: p.image_url, detail: p.detail } } : { type: "text", text: p.text },
          ),
        });
      } else out.push({ role, content: parts.map((p) => p.text as string).join("") });
    } else if (it.type === "function_call") {
      const call = { id: it.call_id, type: "function", function: { name: it.name, arguments: it.arguments } };
      const last = out.at(-1);
      if (last?.role === "assistant" && Array.isArray(last.tool_calls)) (last.tool_calls as unknown[]).push(call);
      else if (last?.role === "assistant" && last.tool_calls === undefined) last.tool_calls = [call];
      else out.push({ role: "assistant", content: null, tool_calls: [call] });
    } else if (it.type === "function_call_output") out.push({ role: "tool", tool_call_id: it.call_id, content: it.output });
  }
  return out as ChatCompletionRequest["messages"];
}

/** The request's function tools in the chat shape; any other tool type is a 400 naming it. */
function chatTools(tools: Item[] | undefined): ChatCompletionRequest["tools"] {
  if (!tools) return undefined;
  return tools.map((t, i) => {
    if (t.type !== "function") {
      throw bad(`Tool type '${String(t.type)}' is not supported; only 'function' tools are.`, `tools[${i}].type`);
    }
    if (typeof t.name !== "string" || t.name === "") throw bad("A function tool needs 'name'.", `tools[${i}].name`);
    const fn: Record<string, unknown> = { name: t.name };
    if (typeof t.description === "string") fn.description = t.description;
    if (t.parameters && typeof t.parameters === "object") fn.parameters = t.parameters;
    if (typeof t.strict === "boolean") fn.strict = t.strict;
    return { type: "function", function: fn } as NonNullable<ChatCompletionRequest["tools"]>[number];
  });
}

function chatToolChoice(choice: string | Item | undefined): ChatCompletionRequest["tool_choice"] {
  if (choice === undefined) return undefined;
  if (choice === "none" || choice === "auto" || choice === "required") return choice;
  if (typeof choice === "object" && choice.type === "function" && typeof choice.name === "string") return { type: "function", function: { name: choice.name } };
  throw bad("tool_choice must be 'none', 'auto', 'required' or {type: 'function', name}.", "tool_choice");
}

function chatResponseFormat(format: Item | undefined): ChatCompletionRequest["response_format"] {
  if (!format || format.type === "text") return undefined;
  if (format.type === "json_object") return { type: "json_object" };
  if (format.type === "json_schema") {
    if (typeof format.name !== "string") throw bad("A json_schema format needs 'name'.", "text.format.name");
    if (!format.schema || typeof format.schema !== "object") throw bad("A json_schema format needs 'schema'.", "text.format.schema");
    const js: Record<string, unknown> = { name: format.name, schema: format.schema };
    if (typeof format.strict === "boolean") js.strict = format.strict;
    if (typeof format.description === "string") js.description = format.description;
    return { type: "json_schema", json_schema: js } as ChatCompletionRequest["response_format"];
  }
  throw bad(`Text format type '${String(format.type)}' is not supported; use 'text', 'json_object' or 'json_schema'.`, "text.format.type");
}

/** Token logprobs on the output text: asked for by `include` or by `top_logprobs` above 0. */
const wantsLogprobs = (b: ResponsesRequest) => (b.include ?? []).includes("message.output_text.logprobs") || (b.top_logprobs ?? 0) > 0;

/** A chat choice's token logprobs (the Responses shape is the chat one: token, logprob, bytes, top_logprobs). */
function tokenLogprobs(choice: Item | undefined): Item[] {
  const content = (choice?.logprobs as { content?: Item[] | null } | null | undefined)?.content;
  return Array.isArray(content) ? content : [];
}

/** The chat completion request a Responses request is served as, over the conversation's items. */
export function toChat(body: ResponsesRequest, conversation: Item[]): ChatCompletionRequest {
  if (body.background === true) throw bad("Background responses are not supported.", "background");
  if (body.conversation != null) throw bad("Conversations are not supported; use 'previous_response_id'.", "conversation");
  if (body.prompt != null) throw bad("Prompt templates are not supported; send 'input' and 'instructions'.", "prompt");
  if (body.context_management != null) throw bad("'context_management' is not supported.", "context_management");
  const chat: Record<string, unknown> = {
    model: body.model,
    messages: chatMessages(body.instructions, conversation),
    stream: body.stream === true,
  };
  if (body.stream === true) chat.stream_options = { include_usage: true };
  const tools = chatTools(body.tools);
  if (tools && tools.length > 0) chat.tools = tools;
  const choice = chatToolChoice(body.tool_choice);
  if (choice !== undefined && tools && tools.length > 0) chat.tool_choice = choice;
  const format = chatResponseFormat(body.text?.format);
  if (format) chat.response_format = format;
  if (body.max_output_tokens != null) chat.max_completion_tokens = body.max_output_tokens;
  if (body.temperature != null) chat.temperature = body.temperature;
  if (body.top_p != null) chat.top_p = body.top_p;
  if (wantsLogprobs(body)) {
    chat.logprobs = true;
    if (body.top_logprobs) chat.top_logprobs = body.top_logprobs;
  }
  if (body.parallel_tool_calls != null && tools && tools.length > 0) chat.parallel_tool_calls = body.parallel_tool_calls;
  if (body.user !== undefined) chat.user = body.user;
  if (body.safety_identifier !== undefined) chat.safety_identifier = body.safety_identifier;
  if (body.metadata != null) chat.metadata = body.metadata;
  if (body.prompt_cache_key !== undefined) chat.prompt_cache_key = body.prompt_cache_key;
  if (body.service_tier != null) chat.service_tier = body.service_tier;
  return chat as unknown as ChatCompletionRequest;
}

interface ChatUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  estimated_cost?: number;
}

function responseUsage(u: ChatUsage | undefined) {
  if (!u) return null;
  return {
    input_tokens: u.prompt_tokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: u.completion_tokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: u.total_tokens,
    ...(u.estimated_cost !== undefined ? { estimated_cost: u.estimated_cost } : {}),
  };
}

/** Everything the Response object echoes of the request, and where the answer goes when done. */
export interface ResponseContext {
  id: string;
  createdAt: number;
  body: ResponsesRequest;
  /** Called with the final Response object before it is sent (storage); a rejection is logged by the caller. */
  onFinished: (response: Item) => Promise<void>;
}

/** The Response object around `output`, echoing the request's parameters. */
function responseObject(c: ResponseContext, model: string, status: string, output: Item[], extra: Item = {}): Item {
  const b = c.body;
  const format = b.text?.format ?? { type: "text" };
  return {
    id: c.id,
    object: "response",
    created_at: c.createdAt,
    status,
    background: false,
    error: null,
    incomplete_details: null,
    instructions: b.instructions ?? null,
    max_output_tokens: b.max_output_tokens ?? null,
    // Caps calls to built-in tools; there are none here, so it is honoured as given.
    max_tool_calls: b.max_tool_calls ?? null,
    model,
    output,
    parallel_tool_calls: b.parallel_tool_calls ?? true,
    previous_response_id: b.previous_response_id ?? null,
    // Echoed as asked, as OpenAI does; it changes nothing here (the models reason in their text, if at all).
    reasoning: { effort: b.reasoning?.effort ?? null, summary: b.reasoning?.summary ?? null },
    service_tier: b.service_tier ?? "default",
    store: b.store !== false,
    temperature: b.temperature ?? 1,
    text: { format, verbosity: b.text?.verbosity ?? "medium" },
    tool_choice: b.tool_choice ?? "auto",
    tools: (b.tools ?? []).map((t) => ({
      type: "function",
      name: t.name,
      description: t.description ?? null,
      parameters: t.parameters ?? null,
      strict: t.strict ?? true,
    })),
    top_logprobs: b.top_logprobs ?? 0,
    top_p: b.top_p ?? 1,
    truncation: b.truncation ?? "disabled",
    usage: null,
    user: b.user ?? null,
    metadata: b.metadata ?? {},
    ...extra,
  };
}

/** A finish reason's status and `incomplete_details`. */
function ending(finish: string | undefined): { status: string; extra: Item } {
  if (finish === "length") return { status: "incomplete", extra: { incomplete_details: { reason: "max_output_tokens" } } };
  if (finish === "content_filter") return { status: "incomplete", extra: { incomplete_details: { reason: "content_filter" } } };
  return { status: "completed", extra: {} };
}

interface ChatToolCall {
  id: string;
  function: { name: string; arguments: string };
}

/** A whole chat completion as a Response object. */
export function responseFromChat(c: ResponseContext, chat: Item): Item {
  const choice = (chat.choices as Item[] | undefined)?.[0] ?? {};
  const msg = (choice.message ?? {}) as { content?: string | null; tool_calls?: ChatToolCall[] };
  const output: Item[] = [];
  const { status, extra } = ending(choice.finish_reason as string | undefined);
  if (msg.content) output.push(messageItem(newId("msg"), msg.content, status === "completed" ? "completed" : "incomplete", tokenLogprobs(choice)));
  for (const t of msg.tool_calls ?? []) output.push(callItem(newId("fc"), t.id, t.function.name, t.function.arguments, "completed"));
  return responseObject(c, String(chat.model ?? c.body.model), status, output, { ...extra, usage: responseUsage(chat.usage as ChatUsage | undefined) });
}

const messageItem = (id: string, text: string, status: string, logprobs: Item[]): Item => ({
  id,
  type: "message",
  status,
  role: "assistant",
  content: [{ type: "output_text", text, annotations: [], logprobs }],
});
const callItem = (id: string, callId: string, name: string, args: string, status: string): Item => ({
  id,
  type: "function_call",
  status,
  call_id: callId,
  name,
  arguments: args,
});

interface OpenItem {
  index: number;
  item: Item;
  kind: "message" | "call";
  text: string;
  logprobs: Item[];
}

/**
 * Stands in for the HTTP response the chat pipeline writes: whole answers and errors before the
 * first byte pass through its `writeHead`/`end` (a 200 rewritten into a Response object); a
 * stream's `data:` chunks become Responses events (`event:` + `data:` with `sequence_number`),
 * `[DONE]` becomes `response.completed` (or `response.incomplete`), and an error mid-stream
 * `response.failed` then an `error` event. The response is stored (`onFinished`) before its
 * last bytes leave, so a client that reads `response.completed` can retrieve it at once.
 */
export class ResponsesWriter {
  private status = 200;
  private headers: Record<string, string | number> = {};
  private streaming = false;
  private passThrough = false;
  private headWritten = false;
  private ended = false;
  private seq = 0;
  private pending = "";
  private model: string;
  private readonly items: OpenItem[] = [];
  private message: OpenItem | undefined;
  private readonly calls = new Map<number, OpenItem>();
  private finish: string | undefined;
  private usage: ChatUsage | undefined;

  constructor(
    private readonly res: ServerResponse,
    private readonly c: ResponseContext,
    private readonly onError: (err: unknown) => void,
  ) {
    this.model = c.body.model;
  }

  /** The pipeline's view of it as a ServerResponse (what it calls of one is below). */
  asResponse(): ServerResponse {
    return this as unknown as ServerResponse;
  }

  get headersSent(): boolean {
    return this.headWritten;
  }
  get writableEnded(): boolean {
    return this.ended;
  }
  get writableFinished(): boolean {
    return this.res.writableFinished;
  }
  get statusCode(): number {
    return this.headWritten ? this.status : this.res.statusCode;
  }
  on(event: string, fn: () => void): this {
    this.res.on(event, fn);
    return this;
  }
  off(event: string, fn: () => void): this {
    this.res.off(event, fn);
    return this;
  }
  cork(): void {
    this.res.cork();
  }
  uncork(): void {
    if (!this.res.writableEnded) this.res.uncork();
  }

  writeHead(status: number, headers: Record<string, string | number>): this {
    this.headWritten = true;
    this.status = status;
    this.headers = { ...headers };
    if (status !== 200) {
      this.passThrough = true;
      this.res.writeHead(status, headers);
    } else if (String(headers["content-type"] ?? "").startsWith("text/event-stream")) {
      this.streaming = true;
      this.res.writeHead(200, headers);
      const r = responseObject(this.c, this.model, "in_progress", []);
      this.emit("response.created", { response: r });
      this.emit("response.in_progress", { response: r });
    }
    return this;
  }

  write(data: string | Uint8Array): boolean {
    if (this.passThrough) return this.res.write(data);
    this.pending += typeof data === "string" ? data : Buffer.from(data).toString();
    if (this.streaming) this.frames();
    return true;
  }

  end(data?: string | Uint8Array): this {
    if (this.ended) return this;
    this.ended = true;
    if (this.passThrough) {
      this.res.end(data);
      return this;
    }
    if (data !== undefined) this.pending += typeof data === "string" ? data : Buffer.from(data).toString();
    if (this.streaming) {
      const failure = this.frames();
      if (failure === undefined) this.closeStream();
      else this.failStream(failure);
      return this;
    }
    let response: Item;
    try {
      response = responseFromChat(this.c, JSON.parse(this.pending) as Item);
    } catch (err) {
      // Never thrown into the agent call's event handler: the client gets OpenAI's error JSON.
      this.onError(err);
      const out = JSON.stringify(errorBody(new PlatformError("internal", "The server had an error while processing your request.")));
      this.status = 500;
      this.res.writeHead(500, { ...this.headers, "content-length": Buffer.byteLength(out) });
      this.res.end(out);
      return this;
    }
    void this.deliver(response, () => {
      const out = JSON.stringify(response);
      const h = { ...this.headers, "content-length": Buffer.byteLength(out) };
      this.res.writeHead(200, h);
      this.res.end(out);
    });
    return this;
  }

  /** Store, then send (a storage failure is logged; the client still gets its answer). */
  private async deliver(response: Item, send: () => void): Promise<void> {
    try {
      await this.c.onFinished(response);
    } catch (err) {
      this.onError(err);
    }
    if (!this.res.destroyed) send();
  }

  private emit(type: string, fields: Item): void {
    const data = JSON.stringify({ type, sequence_number: this.seq++, ...fields });
    this.res.write(`event: ${type}\ndata: ${data}\n\n`);
  }

  /** Handles the whole `data:` frames received so far; an error frame's error, if one came. */
  private frames(): Item | undefined {
    let failure: Item | undefined;
    for (;;) {
      const end = this.pending.indexOf("\n\n");
      if (end === -1) break;
      const frame = this.pending.slice(0, end);
      this.pending = this.pending.slice(end + 2);
      if (!frame.startsWith("data: ")) continue;
      const payload = frame.slice(6);
      if (payload === "[DONE]") continue;
      let chunk: Item;
      try {
        chunk = JSON.parse(payload) as Item;
      } catch (err) {
        this.onError(err);
        continue;
      }
      if (chunk.error) failure = chunk.error as Item;
      else this.chunk(chunk);
    }
    return failure;
  }

  private open(kind: OpenItem["kind"], item: Item): OpenItem {
    const o: OpenItem = { index: this.items.length, item, kind, text: "", logprobs: [] };
    this.items.push(o);
    this.emit("response.output_item.added", { output_index: o.index, item });
    return o;
  }

  private chunk(chunk: Item): void {
    if (typeof chunk.model === "string") this.model = chunk.model;
    if (chunk.usage) this.usage = chunk.usage as ChatUsage;
    const choice = (chunk.choices as Item[] | undefined)?.[0];
    if (!choice) return;
    if (typeof choice.finish_reason === "string") this.finish = choice.finish_reason;
    const delta = (choice.delta ?? {}) as {
      content?: string | null;
      tool_calls?: { index: number; id?: string; function?: { name?: string; arguments?: string } }[];
    };
    if (delta.content) {
      if (!this.message) {
        this.message = this.open("message", { id: newId("msg"), type: "message", status: "in_progress", role: "assistant", content: [] });
        this.emit("response.content_part.added", {
          item_id: this.message.item.id,
          output_index: this.message.index,
          content_index: 0,
          part: { type: "output_text", text: "", annotations: [], logprobs: [] },
        });
      }
      this.message.text += delta.content;
      const logprobs = tokenLogprobs(choice);
      this.message.logprobs.push(...logprobs);
      this.emit("response.output_text.delta", {
        item_id: this.message.item.id,
        output_index: this.message.index,
        content_index: 0,
        delta: delta.content,
        logprobs,
      });
    }
    for (const t of delta.tool_calls ?? []) {
      let call = this.calls.get(t.index);
      if (!call) {
        call = this.open("call", callItem(newId("fc"), t.id ?? newId("call"), t.function?.name ?? "", "", "in_progress"));
        this.calls.set(t.index, call);
      }
      const args = t.function?.arguments;
      if (args) {
        call.text += args;
        this.emit("response.function_call_arguments.delta", { item_id: call.item.id, output_index: call.index, delta: args });
      }
    }
  }

  /** The items as they end (`status`), each with its closing events. */
  private closeItems(status: string): Item[] {
    return this.items.map((o) => {
      if (o.kind === "message") {
        const part = { type: "output_text", text: o.text, annotations: [], logprobs: o.logprobs };
        const ids = { item_id: o.item.id, output_index: o.index, content_index: 0 };
        this.emit("response.output_text.done", { ...ids, text: o.text, logprobs: o.logprobs });
        this.emit("response.content_part.done", { ...ids, part });
        const item = messageItem(o.item.id as string, o.text, status, o.logprobs);
        this.emit("response.output_item.done", { output_index: o.index, item });
        return item;
      }
      const item = callItem(o.item.id as string, o.item.call_id as string, o.item.name as string, o.text, status);
      this.emit("response.function_call_arguments.done", { item_id: o.item.id, output_index: o.index, name: o.item.name, arguments: o.text });
      this.emit("response.output_item.done", { output_index: o.index, item });
      return item;
    });
  }

  private closeStream(): void {
    const { status, extra } = ending(this.finish);
    const output = this.closeItems(status === "completed" ? "completed" : "incomplete");
    const response = responseObject(this.c, this.model, status, output, { ...extra, usage: responseUsage(this.usage) });
    void this.deliver(response, () => {
      this.emit(status === "completed" ? "response.completed" : "response.incomplete", { response });
      this.res.end();
    });
  }

  private failStream(err: Item): void {
    const output = this.closeItems("incomplete");
    const code = typeof err.code === "string" ? err.code : "server_error";
    const message = typeof err.message === "string" ? err.message : "The response failed.";
    const response = responseObject(this.c, this.model, "failed", output, { error: { code, message }, usage: responseUsage(this.usage) });
    void this.deliver(response, () => {
      this.emit("response.failed", { response });
      this.emit("error", { code, message, param: typeof err.param === "string" ? err.param : null });
      this.res.end();
    });
  }
}
