/** One JSON call to the platform's HTTP API with a key: the status and the parsed answer (tests read `error` from it). */
export interface JsonAnswer<T> {
  status: number;
  json: T & { error?: { message: string; type: string; param: string | null; code: string | null } };
}

export async function callJson<T = Record<string, unknown>>(url: string, method: string, key: string | null, body?: unknown): Promise<JsonAnswer<T>> {
  const headers: Record<string, string> = {};
  if (key !== null) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, json: (await r.json()) as JsonAnswer<T>["json"] };
}

/** A new tenant and an inference key of it, made with the platform's admin key: its secret. */
export async function newTenantKey(platform: { baseURL: string; adminKey: string }, name = `other-${Date.now()}`): Promise<string> {
  const t = await callJson<{ id: string }>(`${platform.baseURL}/admin/tenants`, "POST", platform.adminKey, { name });
  const k = await callJson<{ secret: string }>(`${platform.baseURL}/admin/api-keys`, "POST", platform.adminKey, {
    tenant_id: t.json.id,
    name: "k",
    scopes: ["inference"],
  });
  return k.json.secret;
}
