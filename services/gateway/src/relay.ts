/**
 * Writes an agent's events to the client as OpenAI's SSE. Chunks pass through as the
 * engine wrote them. Usage arrives exactly once: with `stream_options.include_usage` as
 * OpenAI sends it, in the usage-only chunk (`choices: []`) after the last choice chunk;
 * without it, on the chunk that carries `finish_reason`, held back until the usage arrives
 * (the hosted provider's convention). Then `data: [DONE]`. An error after the first byte is one `data: {"error": …}` event.
 * Where engines differ from OpenAI's response schema (vLLM and TGI leave out `refusal`),
 * the answer is made to conform.
 */
import type { ServerResponse } from "node:http";
import { ownedBuffer } from "@infera/core";

export interface UsageOut {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  estimated_cost: number;
}

const DONE = Buffer.from("data: [DONE]\n\n");
const DATA = Buffer.from("data: ");
const END = Buffer.from("\n\n");

/** A chunk's bytes as a Buffer without copying them. */
function view(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

const FINISH_KEY = Buffer.from('"finish_reason"');
const LOGPROBS_CONTENT = Buffer.from('"logprobs":{"content"');

/** JSON whitespace: space, tab, LF, CR. */
function isSpace(c: number | undefined): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

/**
 * Whether a chunk carries a finish_reason (a value other than null). Per token: one search
 * from the start (chunks carry it near their end) and one over the few bytes after it,
 * with Buffer needles (a string needle is converted on every call).
 */
function finishes(b: Buffer): boolean {
  for (let i = b.indexOf(FINISH_KEY); i !== -1; i = b.indexOf(FINISH_KEY, i)) {
    i += FINISH_KEY.length;
    while (isSpace(b[i])) i++;
    if (b[i] !== 0x3a) continue; // not a key: the text "finish_reason" inside a string
    i++;
    while (isSpace(b[i])) i++;
    // `null` (n u l l): no finish here; anything else is one.
    if (!(b[i] === 0x6e && b[i + 1] === 0x75 && b[i + 2] === 0x6c && b[i + 3] === 0x6c)) return true;
  }
  return false;
}

const FINISH_REASON = /"finish_reason"\s*:\s*"([A-Za-z_]{1,32})"/g;

/** The finish reasons a chunk or answer names (`stop`, `length`, `tool_calls`, …), in order, for traces and the access log. */
export function finishReasonsIn(text: string, into: string[] = []): string[] {
  for (const m of text.matchAll(FINISH_REASON)) into.push(m[1]!);
  return into;
}

export class SseRelay {
  private started = false;
  private held: Buffer | undefined;
  private first: Buffer | undefined;
  private lastAt = 0;
  chunks = 0;
  /** The finish reasons the stream's chunks carried. */
  readonly finishReasons: string[] = [];

  constructor(
    private readonly res: ServerResponse,
    private readonly headers: Record<string, string>,
    private readonly includeUsage: boolean,
    private readonly onToken: (gapMs: number | undefined) => void,
  ) {}

  get hasStarted(): boolean {
    return this.started;
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    this.res.writeHead(200, {
      ...this.headers,
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
  }

  /** One chunk as the engine wrote it (JSON bytes): passed through without being decoded, except the rare ones below. */
  chunk(raw: Uint8Array): void {
    let json = view(raw);
    this.start();
    const now = performance.now();
    this.onToken(this.lastAt ? now - this.lastAt : undefined);
    this.lastAt = now;
    this.chunks++;
    // A copy of its own: the view would keep the whole gRPC read buffer it points into alive for the stream's life.
    if (this.first === undefined) this.first = ownedBuffer(json);
    // Chat logprobs need `refusal` (OpenAI's schema requires it; vLLM omits it): only those chunks are parsed.
    if (json.indexOf(LOGPROBS_CONTENT) !== -1) json = Buffer.from(conformChatChunk(json.toString()));
    const finishing = finishes(json);
    if (finishing) finishReasonsIn(json.toString(), this.finishReasons);
    if (!this.includeUsage && finishing) {
      if (this.held !== undefined) this.write(this.held);
      this.held = json;
      return;
    }
    this.write(json);
  }

  usage(u: UsageOut): void {
    this.start();
    if (this.held !== undefined && !this.includeUsage) {
      const c = JSON.parse(this.held.toString()) as Record<string, unknown>;
      c.usage = u;
      this.write(Buffer.from(JSON.stringify(c)));
      this.held = undefined;
    }
    if (this.includeUsage) {
      const meta = this.first ? (JSON.parse(this.first.toString()) as Record<string, unknown>) : {};
      this.write(Buffer.from(JSON.stringify({ id: meta.id, object: meta.object, created: meta.created, model: meta.model, choices: [], usage: u })));
    }
    this.end(DONE);
  }

  /** An error after the stream started: one error event, then the stream ends. */
  error(body: unknown): void {
    this.start();
    if (this.held !== undefined) this.write(this.held);
    this.held = undefined;
    this.end(Buffer.from(`data: ${JSON.stringify(body)}\n\n`));
  }

  /** Frames not yet handed to the socket, and their length. */
  private out: Buffer[] = [];
  private outBytes = 0;
  private flushing = false;
  /** The first frame was written. */
  private opened = false;
  /** Frames go to the socket itself (see flush). */
  private direct = false;

  private write(json: Buffer): void {
    // Frames that arrive in one turn of the event loop (the chunks of one agent message, a
    // burst, or a backlog behind a slow client) leave as one buffer in one response write:
    // one chunked-encoding frame and one socket write, not one of each per token.
    this.out.push(DATA, json, END);
    this.outBytes += DATA.length + json.length + END.length;
    // The first frame (with the headers) leaves at once: time to first token waits for no
    // turn of the event loop (≈0.1 ms at one stream, more on a busy gateway). Later ones batch.
    if (!this.opened) {
      this.opened = true;
      this.flush();
      return;
    }
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(this.flush);
    }
  }

  private take(): Buffer {
    const b = this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out, this.outBytes);
    this.out = [];
    this.outBytes = 0;
    return b;
  }

  /** The chunk frame of what is waiting, as Node frames a chunked write (`<hex size>\r\n…\r\n`), in one buffer. */
  private takeChunk(): Buffer {
    const size = this.outBytes.toString(16);
    const b = Buffer.allocUnsafe(size.length + this.outBytes + 4);
    let pos = b.write(size, 0, "latin1");
    b[pos++] = 0x0d;
    b[pos++] = 0x0a;
    for (const part of this.out) {
      b.set(part, pos);
      pos += part.length;
    }
    b[pos++] = 0x0d;
    b[pos] = 0x0a;
    this.out = [];
    this.outBytes = 0;
    return b;
  }

  private readonly flush = (): void => {
    this.flushing = false;
    if (this.out.length === 0 || this.res.writableEnded) return;
    const socket = this.res.socket;
    if (this.direct) {
      // A socket gone or ended means the client left: nothing to write (the request's abort handles the rest).
      if (socket && !socket.destroyed && socket.writable) socket.write(this.takeChunk());
      return;
    }
    // The first write sends the headers. If it went straight to the connection (the socket is
    // this response's: not a pipelined one waiting its turn) in chunked encoding, the frames
    // after it go to the socket framed as Node frames them: one write call, where the
    // response's write corks the socket, writes size, CRLF, data and CRLF, and uncorks on
    // the next tick into a writev. Same bytes on the wire.
    const straight = socket !== null && (this.res as { chunkedEncoding?: boolean }).chunkedEncoding === true;
    this.res.write(this.take());
    this.direct = straight;
  };

  /** The last frame, with whatever is waiting, in the response's one closing write. */
  private end(last: Buffer): void {
    this.out.push(last);
    this.outBytes += last.length;
    this.res.end(this.take());
  }
}

/** OpenAI's ImageGenUsage, for image servers that report no token counts. */
export const IMAGE_USAGE = { input_tokens: 0, output_tokens: 0, total_tokens: 0, input_tokens_details: { text_tokens: 0, image_tokens: 0 } };

interface ChatChoiceShape {
  message?: Record<string, unknown>;
  logprobs?: Record<string, unknown> | null;
}

function conformChoices(choices: unknown): void {
  if (!Array.isArray(choices)) return;
  for (const c of choices as ChatChoiceShape[]) {
    if (c.message && c.message.refusal === undefined) c.message.refusal = null;
    if (c.logprobs && typeof c.logprobs === "object" && c.logprobs.refusal === undefined) c.logprobs.refusal = null;
  }
}

/** A whole chat completion: every message and logprobs object gets `refusal` (null when the engine has none). */
export function conformChatBody(body: Record<string, unknown>): void {
  conformChoices(body.choices);
}

export function conformChatChunk(json: string): string {
  const chunk = JSON.parse(json) as Record<string, unknown>;
  conformChoices(chunk.choices);
  return JSON.stringify(chunk);
}
