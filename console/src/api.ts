/**
 * The platform's API, same origin, with the key the operator signed in with (kept in
 * sessionStorage: gone when the tab closes; never in localStorage or a cookie). A refused
 * request becomes an ApiError carrying the API's message and the field it named, which the
 * forms show next to that field.
 */
const KEY = "infera.key";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null,
  ) {
    super(message);
  }
}

export function storedKey(): string | null {
  return sessionStorage.getItem(KEY);
}

export function storeKey(key: string | null): void {
  if (key === null) sessionStorage.removeItem(KEY);
  else sessionStorage.setItem(KEY, key);
}

export type Query = Record<string, string | number | boolean | undefined>;

export function url(path: string, query?: Query): string {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== "") u.searchParams.set(k, String(v));
  return u.pathname + u.search;
}

export function headers(key = storedKey(), json = false): Record<string, string> {
  const h: Record<string, string> = {};
  if (key) h.authorization = `Bearer ${key}`;
  if (json) h["content-type"] = "application/json";
  return h;
}

export async function errorOf(res: Response): Promise<ApiError> {
  let message = `The platform answered HTTP ${res.status}.`;
  let param: string | null = null;
  try {
    const body = (await res.json()) as { error?: { message?: string; param?: string | null } };
    if (body.error?.message) message = body.error.message;
    param = body.error?.param ?? null;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(res.status, message, param);
}

export async function api<T>(method: string, path: string, body?: unknown, query?: Query, key?: string): Promise<T> {
  const res = await fetch(url(path, query), {
    method,
    headers: headers(key ?? storedKey(), body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw await errorOf(res);
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}
