/** A chat completion streamed token by token from the OpenAI API, with its usage and time to first token. */
import { EventSourceParserStream } from "eventsource-parser/stream";
import { type FormEvent, useRef, useState } from "react";
import { api, errorOf, headers } from "../api.ts";
import type { Model } from "../types.ts";
import { ErrorNote, Field, usePoll } from "../ui.tsx";

interface Chunk {
  choices: { delta?: { content?: string }; finish_reason?: string | null }[];
  usage?: { prompt_tokens: number; completion_tokens: number } | null;
  error?: { message: string };
}

export function Playground() {
  const models = usePoll(() => api<{ data: Model[] }>("GET", "/v1/openai/models"), 0);
  const [model, setModel] = useState("");
  const [system, setSystem] = useState("You are a helpful assistant.");
  const [prompt, setPrompt] = useState("");
  const [maxTokens, setMaxTokens] = useState("128");
  const [answer, setAnswer] = useState("");
  const [meta, setMeta] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const abort = useRef<AbortController | null>(null);
  const chosen = model || models.data?.data[0]?.id || "";

  async function send(e: FormEvent) {
    e.preventDefault();
    setAnswer("");
    setMeta(null);
    setError(null);
    setBusy(true);
    const ctrl = new AbortController();
    abort.current = ctrl;
    const started = performance.now();
    let first: number | undefined;
    try {
      const res = await fetch("/v1/openai/chat/completions", {
        method: "POST",
        headers: headers(undefined, true),
        signal: ctrl.signal,
        body: JSON.stringify({
          model: chosen,
          stream: true,
          max_tokens: Number(maxTokens),
          messages: [...(system.trim() ? [{ role: "system", content: system }] : []), { role: "user", content: prompt }],
        }),
      });
      if (!res.ok) throw await errorOf(res);
      const events = res.body!.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream());
      for await (const ev of events as unknown as AsyncIterable<{ data: string }>) {
        if (ev.data === "[DONE]") break;
        const chunk = JSON.parse(ev.data) as Chunk;
        if (chunk.error) throw new Error(chunk.error.message);
        const text = chunk.choices[0]?.delta?.content ?? "";
        if (text) {
          first ??= performance.now();
          setAnswer((a) => a + text);
        }
        if (chunk.usage) {
          setMeta(
            `${chunk.usage.prompt_tokens} prompt + ${chunk.usage.completion_tokens} completion tokens · first token after ${Math.round((first ?? performance.now()) - started)} ms · ${Math.round(performance.now() - started)} ms in all`,
          );
        }
      }
    } catch (err) {
      if (!ctrl.signal.aborted) setError(err);
    } finally {
      setBusy(false);
    }
  }

  return (
    <section aria-labelledby="playground-title">
      <h1 id="playground-title">Playground</h1>
      <form className="form" onSubmit={send}>
        <div className="row">
          <Field id="pg-model" label="Model">
            <select id="pg-model" value={chosen} onChange={(e) => setModel(e.target.value)}>
              {models.data?.data.map((m) => (
                <option key={m.id} value={m.id}>
                  {m.id}
                </option>
              ))}
            </select>
          </Field>
          <Field id="pg-max" label="Max tokens">
            <input id="pg-max" type="number" min={1} max={4096} value={maxTokens} onChange={(e) => setMaxTokens(e.target.value)} />
          </Field>
        </div>
        <Field id="pg-system" label="System message">
          <textarea id="pg-system" rows={2} value={system} onChange={(e) => setSystem(e.target.value)} />
        </Field>
        <Field id="pg-prompt" label="Your message" hint="Ctrl+Enter sends.">
          <textarea
            id="pg-prompt"
            rows={4}
            required
            value={prompt}
            onChange={(e) => setPrompt(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) e.currentTarget.form?.requestSubmit();
            }}
          />
        </Field>
        <div className="actions">
          <button type="submit" disabled={busy || !prompt.trim() || !chosen}>
            {busy ? "Streaming…" : "Send"}
          </button>
          {busy ? (
            <button type="button" className="quiet" onClick={() => abort.current?.abort()}>
              Stop
            </button>
          ) : null}
        </div>
      </form>
      <ErrorNote error={error} />
      <section aria-labelledby="answer-title" aria-live="polite">
        <h2 id="answer-title">Answer</h2>
        <div className="answer" data-testid="answer">
          {answer || (busy ? "…" : "")}
        </div>
        {meta ? (
          <p className="hint" data-testid="answer-meta">
            {meta}
          </p>
        ) : null}
      </section>
    </section>
  );
}
