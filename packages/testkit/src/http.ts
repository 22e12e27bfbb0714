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

/** A new tenant (through the admin API) and a key of it with the `inference` scope: its secret. */
export async function newTenantKey(baseURL: string, adminKey: string, name = `tenant-${Date.now()}`): Promise<string> {
  const tenant = await callJson<{ id: string }>(`${baseURL}/admin/tenants`, "POST", adminKey, { name });
  const key = await callJson<{ secret: string }>(`${baseURL}/admin/api-keys`, "POST", adminKey, {
    tenant_id: tenant.json.id,
    name: "k",
    scopes: ["inference"],
  });
  return key.json.secret;
}
