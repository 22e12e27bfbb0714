/**
 * A batch input file (OpenAI's Batch API JSONL), checked line by line as it streams in: each
 * line a JSON object `{custom_id, method, url, body}`, `custom_id` unique in the file, `method`
 * POST, `url` one of the batchable endpoints and the same on every line, `body` a valid request
 * for that endpoint (the route's own schema) that does not stream. The first fault stops the
 * upload with a 400 naming its line; the models the lines name are checked by the caller
 * (they need the tenant's registry), each at the first line that names it.
 */
import { Transform } from "node:stream";
import { Ajv, type ValidateFunction } from "ajv";
import { PlatformError } from "@infera/core";
import { findBadString, MAX_JSON_DEPTH, scanJson } from "./edge-input.ts";
import { ChatCompletionRequest, CompletionRequest, EmbeddingRequest } from "./openai-schema.ts";
import { type SchemaError, validationError } from "./validation.ts";

/** The endpoints a batch line may call, and the gateway's endpoint kind each is. */
export const BATCH_ENDPOINTS = {
  "/v1/chat/completions": "chat",
  "/v1/completions": "completion",
  "/v1/embeddings": "embedding",
} as const;
export type BatchEndpoint = keyof typeof BATCH_ENDPOINTS;

export interface BatchInputLimits {
  /** The whole file. */
  maxBytes: number;
  maxLines: number;
  /** One line: the body of one request (the gateway's request body limit). */
  maxLineBytes: number;
}

export interface BatchInputSummary {
  lines: number;
  bytes: number;
  endpoint: BatchEndpoint;
  /** Each model the lines name, with the first line that names it. */
  models: Map<string, number>;
}

const FIELDS = new Set(["custom_id", "method", "url", "body"]);
const MAX_CUSTOM_ID = 512;
const NEWLINE = 0x0a;

let validators: Record<BatchEndpoint, ValidateFunction> | undefined;
/** The routes' own request schemas, compiled once (as the routes validate: no coercion, every error). */
function bodyValidators(): Record<BatchEndpoint, ValidateFunction> {
  if (!validators) {
    const ajv = new Ajv({ coerceTypes: false, removeAdditional: false, allErrors: true, useDefaults: false, strict: false });
    validators = {
      "/v1/chat/completions": ajv.compile(ChatCompletionRequest),
      "/v1/completions": ajv.compile(CompletionRequest),
      "/v1/embeddings": ajv.compile(EmbeddingRequest),
    };
  }
  return validators;
}

export function lineError(line: number, reason: string): PlatformError {
  return new PlatformError("invalid_request", `line ${line}: ${reason}`, { param: "file" });
}

/** Feed it the file's bytes in any chunking (`push`), then `end()`; either throws the first fault as a 400. */
export class BatchInputChecker {
  private bytes = 0;
  private lines = 0;
  /** Lines seen, blank ones included (the number a person's editor shows). */
  private lineNo = 0;
  private firstBlank: number | undefined;
  private endpoint: BatchEndpoint | undefined;
  private readonly ids = new Map<string, number>();
  private readonly models = new Map<string, number>();
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private readonly decoder = new TextDecoder("utf-8", { fatal: true });

  constructor(private readonly limits: BatchInputLimits) {}

  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    let start = 0;
    for (let nl = chunk.indexOf(NEWLINE); nl !== -1; nl = chunk.indexOf(NEWLINE, start)) {
      this.pending.push(chunk.subarray(start, nl));
      this.pendingBytes += nl - start;
      this.takeLine();
      start = nl + 1;
    }
    if (start < chunk.length) {
      this.pending.push(chunk.subarray(start));
      this.pendingBytes += chunk.length - start;
      if (this.pendingBytes > this.limits.maxLineBytes) this.tooLong(this.lineNo + 1);
    }
    // After the lines it completed: a fault in them is named before the size.
    if (this.bytes > this.limits.maxBytes) {
      throw lineError(this.lineNo + 1, `the file is larger than the ${this.limits.maxBytes} bytes this server accepts`);
    }
  }

  end(): BatchInputSummary {
    if (this.pendingBytes > 0) this.takeLine();
    if (this.lines === 0 || this.endpoint === undefined) {
      throw new PlatformError("invalid_request", "The file has no lines: a batch input file is JSONL, one request per line.", { param: "file" });
    }
    return { lines: this.lines, bytes: this.bytes, endpoint: this.endpoint, models: this.models };
  }

  private tooLong(n: number): never {
    throw lineError(n, `the line is longer than ${this.limits.maxLineBytes} bytes (the largest request body this server accepts)`);
  }

  private takeLine(): void {
    const n = ++this.lineNo;
    if (this.pendingBytes > this.limits.maxLineBytes) this.tooLong(n);
    const raw = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    let text: string;
    try {
      text = this.decoder.decode(raw);
    } catch {
      throw lineError(n, "not valid UTF-8");
    }
    if (text.trim() === "") {
      // Blank lines may end the file; between requests they are a mistake worth naming.
      this.firstBlank ??= n;
      return;
    }
    if (this.firstBlank !== undefined) throw lineError(this.firstBlank, "an empty line (one JSON object per line, no blank lines between them)");
    if (++this.lines > this.limits.maxLines) throw lineError(n, `more than ${this.limits.maxLines} requests in one file`);
    this.checkLine(text, n);
  }

  private checkLine(text: string, n: number): void {
    if (scanJson(text) === "too_deep") throw lineError(n, `JSON nested more than ${MAX_JSON_DEPTH} levels deep`);
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (err) {
      throw lineError(n, `not valid JSON (${(err as Error).message})`);
    }
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw lineError(n, "must be a JSON object with custom_id, method, url and body");
    const line = v as Record<string, unknown>;
    const bad = findBadString(line);
    if (bad !== undefined) throw lineError(n, `${bad}: text must not contain NUL (\\u0000) or an unpaired surrogate`);
    for (const k of Object.keys(line)) if (!FIELDS.has(k)) throw lineError(n, `unknown field "${k}" (a line has custom_id, method, url and body)`);

    const id = line.custom_id;
    if (typeof id !== "string" || id.length === 0 || id.length > MAX_CUSTOM_ID) {
      throw lineError(n, `custom_id must be a string of 1 to ${MAX_CUSTOM_ID} characters`);
    }
    const seen = this.ids.get(id);
    if (seen !== undefined) throw lineError(n, `duplicate custom_id ${JSON.stringify(id)} (first on line ${seen})`);
    this.ids.set(id, n);

    if (line.method !== "POST") throw lineError(n, `method must be "POST", got ${JSON.stringify(line.method ?? null)}`);
    const url = line.url;
    if (typeof url !== "string" || !Object.hasOwn(BATCH_ENDPOINTS, url)) {
      throw lineError(n, `url must be one of ${Object.keys(BATCH_ENDPOINTS).join(", ")}, got ${JSON.stringify(url ?? null)}`);
    }
    if (this.endpoint === undefined) this.endpoint = url as BatchEndpoint;
    else if (url !== this.endpoint) {
      throw lineError(n, `url "${url}" differs from the first line's "${this.endpoint}" (every line of a batch calls one endpoint)`);
    }

    const body = line.body;
    if (body === null || typeof body !== "object" || Array.isArray(body)) throw lineError(n, "body must be a JSON object (the request)");
    const validate = bodyValidators()[this.endpoint];
    if (!validate(body)) {
      const e = validationError((validate.errors ?? []) as SchemaError[], body);
      throw lineError(n, `body: ${e.message}`);
    }
    const b = body as { model: string; stream?: unknown };
    if (b.stream === true) throw lineError(n, "body.stream must not be true (a batch answer is written whole)");
    if (!this.models.has(b.model)) this.models.set(b.model, n);
  }
}

/** A pass-through stream that feeds a checker and fails at its first fault (before the fault's bytes go further). */
export function checking(checker: BatchInputChecker, onEnd: (s: BatchInputSummary) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      try {
        checker.push(chunk);
      } catch (err) {
        return done(err as Error);
      }
      done(null, chunk);
    },
    flush(done) {
      try {
        onEnd(checker.end());
      } catch (err) {
        return done(err as Error);
      }
      done();
    },
  });
}
