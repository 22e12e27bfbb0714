/**
 * API keys (admin keys): the list shows each key's display prefix only; a new key's secret
 * is shown once, in a dialog, and forgotten when it closes; revoking asks first.
 */
import { type FormEvent, useEffect, useRef, useState } from "react";
import { api, storedKey } from "../api.ts";
import type { ApiKey, Tenant } from "../types.ts";
import { ErrorNote, Field, ago, errorFor, usePoll } from "../ui.tsx";

const SCOPES = ["inference", "deploy", "admin"];

function SecretDialog({ created, onClose }: { created: ApiKey; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [copied, setCopied] = useState(false);
  useEffect(() => {
    ref.current?.showModal();
  }, []);
  return (
    <dialog ref={ref} onClose={onClose} aria-labelledby="secret-title">
      <h2 id="secret-title">Key “{created.name}” created</h2>
      <p>This is the only time its secret is shown. Store it now.</p>
      <p>
        <code className="secret" data-testid="new-secret">
          {created.secret}
        </code>
      </p>
      <div className="actions">
        <button
          type="button"
          onClick={() => {
            void navigator.clipboard
              ?.writeText(created.secret ?? "")
              .then(() => setCopied(true))
              .catch(() => {});
          }}
        >
          {copied ? "Copied" : "Copy"}
        </button>
        <button type="button" onClick={() => ref.current?.close()}>
          I have stored it
        </button>
      </div>
    </dialog>
  );
}

export function Keys() {
  const keys = usePoll(() => api<{ data: ApiKey[] }>("GET", "/admin/api-keys"), 0);
  const tenants = usePoll(() => api<{ data: Tenant[] }>("GET", "/admin/tenants"), 0);
  const [tenant, setTenant] = useState("");
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<string[]>(["inference"]);
  const [tier, setTier] = useState("standard");
  const [error, setError] = useState<unknown>(null);
  const [created, setCreated] = useState<ApiKey | null>(null);
  const [revokeError, setRevokeError] = useState<unknown>(null);
  const tenantId = tenant || tenants.data?.data[0]?.id || "";
  const tenantName = (id: string) => tenants.data?.data.find((t) => t.id === id)?.name ?? id;

  async function create(e: FormEvent) {
    e.preventDefault();
    setError(null);
    try {
      setCreated(await api<ApiKey>("POST", "/admin/api-keys", { tenant_id: tenantId, name: name.trim(), scopes, tier }));
      setName("");
      await keys.reload();
    } catch (err) {
      setError(err);
    }
  }
  async function revoke(k: ApiKey) {
    setRevokeError(null);
    if (!confirm(`Revoke the key “${k.name}” (${k.prefix})? Requests with it are refused within a second.`)) return;
    try {
      await api("DELETE", `/admin/api-keys/${k.id}`);
      await keys.reload();
    } catch (err) {
      setRevokeError(err);
    }
  }
  if (keys.error && !keys.data) return <ErrorNote error={keys.error} />;
  const err = (p: string) => errorFor(error, p);
  return (
    <section aria-labelledby="keys-title">
      <h1 id="keys-title">API keys</h1>
      <form className="row form" onSubmit={create} aria-label="Create an API key">
        <Field id="key-tenant" label="Tenant" error={err("tenant_id")}>
          <select id="key-tenant" value={tenantId} onChange={(e) => setTenant(e.target.value)}>
            {tenants.data?.data.map((t) => (
              <option key={t.id} value={t.id}>
                {t.name}
              </option>
            ))}
          </select>
        </Field>
        <Field id="key-name" label="Name" error={err("name")}>
          <input id="key-name" value={name} onChange={(e) => setName(e.target.value)} aria-invalid={err("name") ? true : undefined} />
        </Field>
        <fieldset className={err("scopes") ? "invalid" : undefined}>
          <legend>Scopes</legend>
          {SCOPES.map((s) => (
            <label key={s} className="inline">
              <input
                type="checkbox"
                checked={scopes.includes(s)}
                onChange={(e) => setScopes(e.target.checked ? [...scopes, s] : scopes.filter((x) => x !== s))}
              />{" "}
              {s}
            </label>
          ))}
          {err("scopes") ? (
            <p className="field-error" role="alert">
              {err("scopes")}
            </p>
          ) : null}
        </fieldset>
        <Field id="key-tier" label="Tier" error={err("tier")}>
          <select id="key-tier" value={tier} onChange={(e) => setTier(e.target.value)}>
            <option value="priority">priority</option>
            <option value="standard">standard</option>
            <option value="batch">batch</option>
          </select>
        </Field>
        <button type="submit">Create key</button>
      </form>
      {error && !["tenant_id", "name", "scopes", "tier"].some(err) ? <ErrorNote error={error} /> : null}
      {created ? <SecretDialog created={created} onClose={() => setCreated(null)} /> : null}
      <ErrorNote error={revokeError} />
      <table>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Prefix</th>
            <th scope="col">Tenant</th>
            <th scope="col">Scopes</th>
            <th scope="col">Tier</th>
            <th scope="col">Created</th>
            <th scope="col">State</th>
            <th scope="col">
              <span className="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {keys.data?.data.map((k) => (
            <tr key={k.id} className={k.revoked_at ? "revoked" : undefined}>
              <td>
                {k.name}
                {!k.revoked_at && storedKey()?.startsWith(k.prefix.replace(/…$/, "")) ? <span className="reason"> (you are signed in with it)</span> : null}
              </td>
              <td>
                <code>{k.prefix}</code>
              </td>
              <td>{tenantName(k.tenant_id)}</td>
              <td>{k.scopes.join(", ")}</td>
              <td>{k.tier}</td>
              <td>{ago(k.created_at)}</td>
              <td>{k.revoked_at ? `revoked ${ago(k.revoked_at)}` : "active"}</td>
              <td>
                {k.revoked_at ? null : (
                  <button type="button" className="danger small" onClick={() => void revoke(k)} aria-label={`Revoke ${k.name}`}>
                    Revoke
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
