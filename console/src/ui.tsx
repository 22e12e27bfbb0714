/** Small pieces every page uses: polling, form fields with the API's message beside them, status badges, times. */
import { type ReactNode, useCallback, useEffect, useRef, useState } from "react";
import { ApiError } from "./api.ts";

/** Runs `load` now and every `everyMs` while mounted; `reload` runs it at once. */
export function usePoll<T>(load: () => Promise<T>, everyMs: number, deps: unknown[] = []) {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | Error | undefined>(undefined);
  const loadRef = useRef(load);
  loadRef.current = load;
  const run = useCallback(async () => {
    try {
      setData(await loadRef.current());
      setError(undefined);
    } catch (err) {
      setError(err as Error);
    }
  }, []);
  useEffect(() => {
    setData(undefined);
    void run();
    if (everyMs <= 0) return;
    const t = setInterval(() => void run(), everyMs);
    return () => clearInterval(t);
  }, [everyMs, run, ...deps]);
  return { data, error, reload: run };
}

/** A form field with its label, a hint, and the API's message when the API named it. */
export function Field(props: { id: string; label: string; error?: string | null; hint?: string; children: ReactNode }) {
  return (
    <div className={props.error ? "field invalid" : "field"}>
      <label htmlFor={props.id}>{props.label}</label>
      {props.children}
      {props.hint && !props.error ? (
        <p className="hint" id={`${props.id}-hint`}>
          {props.hint}
        </p>
      ) : null}
      {props.error ? (
        <p className="field-error" id={`${props.id}-error`} role="alert">
          {props.error}
        </p>
      ) : null}
    </div>
  );
}

/** The message for a field from an ApiError naming it (or one of its parts). */
export function errorFor(err: unknown, ...params: string[]): string | null {
  if (!(err instanceof ApiError) || !err.param) return null;
  return params.some((p) => err.param === p || err.param?.startsWith(`${p}.`) || err.param?.startsWith(`${p}[`)) ? err.message : null;
}

export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p className="error-note" role="alert">
      {(error as Error).message}
    </p>
  );
}

const TONE: Record<string, string> = {
  running: "good",
  ready: "good",
  failed: "bad",
  stopped: "warn",
  draining: "warn",
  stopping: "warn",
  deleted: "muted",
};

export function Status({ value }: { value: string }) {
  return <span className={`status ${TONE[value] ?? "busy"}`}>{value}</span>;
}

export function ago(t: string | number | null | undefined): string {
  if (t === null || t === undefined) return "–";
  const ms = Date.now() - (typeof t === "number" ? t * 1000 : Date.parse(t));
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s}s ago`;
  if (s < 5400) return `${Math.round(s / 60)}m ago`;
  if (s < 129_600) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86_400)}d ago`;
}

export function time(iso: string): string {
  return new Date(iso).toLocaleString(undefined, { hour12: false });
}
