/**
 * The platform's HTTP API as `infera` calls it: JSON in and out, the key as a bearer
 * token, and every failure turned into a CliError whose message is the API's own (with
 * the field it named) and whose exit code says what kind of failure it was.
 */
import { CliError, EXIT, type ExitCode } from "./exit-codes.ts";
import type { Login } from "./config.ts";

export interface ApiErrorBody {
  error: { message: string; type?: string; param?: string | null; code?: string | null };
}

function exitFor(status: number): ExitCode {
  if (status === 401 || status === 403) return EXIT.auth;
  if (status === 404) return EXIT.notFound;
  if (status === 429 || status >= 500) return EXIT.unavailable;
  return EXIT.refused;
}

/** `message (field: param)`: what a person needs to fix the request. */
export function describeApiError(status: number, body: unknown): string {
  const e = (body as ApiErrorBody | undefined)?.error;
  if (!e || typeof e.message !== "string") return `The platform answered HTTP ${status}.`;
  return e.param ? `${e.message} (field: ${e.param})` : e.message;
}

export class Client {
  constructor(
    readonly login: Login,
    private readonly timeoutMs = 30_000,
  ) {}

  async request<T>(method: string, path: string, body?: unknown, query?: Record<string, string | number | boolean | undefined>): Promise<T> {
    const res = await this.raw(method, path, body, query);
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) throw new CliError(describeApiError(res.status, json), exitFor(res.status), json ?? { error: { message: text.slice(0, 500) } });
    return json as T;
  }

  /** The response itself (2xx or not), for streams; network failures become CliErrors. */
  async raw(
    method: string,
    path: string,
    body?: unknown,
    query?: Record<string, string | number | boolean | undefined>,
    options: { signal?: AbortSignal; stream?: boolean } = {},
  ): Promise<Response> {
    const url = new URL(this.login.url + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { authorization: `Bearer ${this.login.key}`, "user-agent": "infera-cli" };
    if (body !== undefined) headers["content-type"] = "application/json";
    const signal = options.stream ? options.signal : AbortSignal.any([AbortSignal.timeout(this.timeoutMs), ...(options.signal ? [options.signal] : [])]);
    try {
      return await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
    } catch (err) {
      if (options.signal?.aborted) throw err;
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(`Could not reach ${this.login.url}: ${cause?.code ?? cause?.message ?? (err as Error).message}.`, EXIT.unavailable);
    }
  }

  /** A failed streaming response as a CliError. */
  static async failure(res: Response): Promise<CliError> {
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return new CliError(describeApiError(res.status, json), exitFor(res.status), json);
  }
}
