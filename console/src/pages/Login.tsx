/** Sign in with an API key: checked against the platform (any key may list models), then kept for this tab only. */
import { type FormEvent, useState } from "react";
import { api } from "../api.ts";
import { Field } from "../ui.tsx";

export function Login({ onSignedIn }: { onSignedIn: (key: string) => void }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api("GET", "/v1/openai/models", undefined, undefined, key.trim());
      onSignedIn(key.trim());
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }
  return (
    <main className="login" id="main">
      <form onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">Infera console</h1>
        <p>Sign in with an API key. It is kept in this tab only and sent to this gateway alone.</p>
        <Field id="api-key" label="API key" error={error} hint="An admin or deploy key, e.g. the one in .data/admin.key.">
          <input
            id="api-key"
            name="api-key"
            type="password"
            autoComplete="off"
            spellCheck={false}
            required
            value={key}
            onChange={(e) => setKey(e.target.value)}
            aria-invalid={error ? true : undefined}
            aria-describedby={error ? "api-key-error" : "api-key-hint"}
          />
        </Field>
        <button type="submit" disabled={busy || key.trim() === ""}>
          {busy ? "Checking…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
