/**
 * One deployment, live: status and config, its replicas with the reason each is not ready,
 * its lifecycle events, the last hour's stats, its logs (tail, and follow), and the actions
 * the deploy API allows in its state (stop, start, change settings, delete).
 */
import { type FormEvent, useEffect, useRef, useState } from "react";
import { api, errorOf, headers, url } from "../api.ts";
import type { Deployment, DeploymentEvent, Page, Replica, Stats } from "../types.ts";
import { ErrorNote, Field, Status, ago, errorFor, time, usePoll } from "../ui.tsx";
import { navigate } from "../App.tsx";

function useEvents(id: string): DeploymentEvent[] {
  const [events, setEvents] = useState<DeploymentEvent[]>([]);
  const last = useRef<string | undefined>(undefined);
  useEffect(() => {
    setEvents([]);
    last.current = undefined;
    let stopped = false;
    const load = async () => {
      for (;;) {
        const page = await api<Page<DeploymentEvent>>("GET", `/deploy/${id}/events`, undefined, { after: last.current, limit: 100 });
        if (stopped) return;
        if (page.data.length) setEvents((e) => [...e, ...page.data]);
        last.current = page.last_id ?? last.current;
        if (!page.has_more) return;
      }
    };
    void load().catch(() => {});
    const t = setInterval(() => void load().catch(() => {}), 2000);
    return () => {
      stopped = true;
      clearInterval(t);
    };
  }, [id]);
  return events;
}

function Logs({ id }: { id: string }) {
  const [follow, setFollow] = useState(true);
  const [lines, setLines] = useState<{ replica_id: string; source: string; line: string }[]>([]);
  const [error, setError] = useState<Error | null>(null);
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const abort = new AbortController();
    setLines([]);
    setError(null);
    void (async () => {
      const res = await fetch(url(`/deploy/${id}/logs`, { tail: 100, follow }), { headers: headers(), signal: abort.signal });
      if (!res.ok) throw await errorOf(res);
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        const parts = buf.split("\n");
        buf = parts.pop() ?? "";
        const got = parts
          .filter((p) => p.trim())
          .map((p) => JSON.parse(p) as { replica_id: string; source: string; line: string; error?: { message: string } });
        const err = got.find((g) => g.error);
        if (err?.error) throw new Error(err.error.message);
        setLines((l) => [...l, ...got].slice(-1000));
      }
    })().catch((err: Error) => {
      if (!abort.signal.aborted) setError(err);
    });
    return () => abort.abort();
  }, [id, follow]);
  useEffect(() => {
    if (box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [lines]);
  return (
    <section aria-labelledby="logs-title">
      <div className="heading">
        <h2 id="logs-title">Logs</h2>
        <label className="inline">
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} /> Follow new lines
        </label>
      </div>
      <ErrorNote error={error} />
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must take focus so the keyboard can scroll it */}
      <div className="logs" ref={box} role="log" tabIndex={0} aria-label="Engine and agent log lines">
        {lines.length === 0 ? "(no log lines yet)" : lines.map((l) => `${l.replica_id} ${l.source.padEnd(6)} ${l.line}`).join("\n")}
      </div>
    </section>
  );
}

function Settings({ d, onSaved }: { d: Deployment; onSaved: () => void }) {
  const [min, setMin] = useState(String(d.settings.min_instances));
  const [max, setMax] = useState(String(d.settings.max_instances));
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState(false);
  async function submit(e: FormEvent) {
    e.preventDefault();
    setError(null);
    setSaved(false);
    try {
      await api("PUT", `/deploy/${d.deploy_id}`, { settings: { min_instances: Number(min), max_instances: Number(max) } });
      setSaved(true);
      onSaved();
    } catch (err) {
      setError(err);
    }
  }
  return (
    <form className="row" onSubmit={submit} aria-label="Replica settings">
      <Field id="min" label="Min replicas" error={errorFor(error, "settings.min_instances")}>
        <input id="min" type="number" min={0} max={64} value={min} onChange={(e) => setMin(e.target.value)} />
      </Field>
      <Field id="max" label="Max replicas" error={errorFor(error, "settings.max_instances")}>
        <input id="max" type="number" min={1} max={64} value={max} onChange={(e) => setMax(e.target.value)} />
      </Field>
      <button type="submit">Save settings</button>
      {saved ? <span role="status">Saved.</span> : null}
      {error && !errorFor(error, "settings") ? <ErrorNote error={error} /> : null}
    </form>
  );
}

export function DeploymentDetail({ id }: { id: string }) {
  const dep = usePoll(() => api<Deployment>("GET", `/deploy/${id}`), 2000, [id]);
  const replicas = usePoll(() => api<{ data: Replica[] }>("GET", `/deploy/${id}/replicas`), 2000, [id]);
  const stats = usePoll(() => api<Stats>("GET", `/deploy/${id}/stats`, undefined, { from: "now-1h" }), 10_000, [id]);
  const events = useEvents(id);
  const [actionError, setActionError] = useState<unknown>(null);
  const d = dep.data;

  async function act(what: "stop" | "start" | "delete") {
    setActionError(null);
    if (what === "delete" && !confirm(`Delete ${d?.model_name}? Its replicas stop and it cannot be started again.`)) return;
    try {
      await api(what === "delete" ? "DELETE" : "POST", what === "delete" ? `/deploy/${id}` : `/deploy/${id}/${what}`);
      if (what === "delete") navigate("#/deployments");
      else await dep.reload();
    } catch (err) {
      setActionError(err);
    }
  }

  if (dep.error && !d) return <ErrorNote error={dep.error} />;
  if (!d) return <p aria-busy="true">Loading…</p>;
  return (
    <article aria-labelledby="deployment-title">
      <div className="heading">
        <h1 id="deployment-title">
          {d.model_name}:{d.version} <Status value={d.status} />
        </h1>
        <div className="actions">
          {d.status === "running" ? (
            <button type="button" onClick={() => void act("stop")}>
              Stop
            </button>
          ) : null}
          {d.status === "stopped" || d.status === "failed" ? (
            <button type="button" onClick={() => void act("start")}>
              Start
            </button>
          ) : null}
          {d.status !== "deleted" ? (
            <button type="button" className="danger" onClick={() => void act("delete")}>
              Delete
            </button>
          ) : null}
        </div>
      </div>
      <ErrorNote error={actionError} />
      {d.fail_reason ? (
        <p className="error-note" role="alert">
          Failed: {d.fail_reason}
        </p>
      ) : null}
      <dl className="facts">
        <dt>Deploy id</dt>
        <dd>
          <code>{d.deploy_id}</code>
        </dd>
        <dt>Replicas</dt>
        <dd>
          {d.instances.running} ready, {d.instances.pending} starting (min {d.settings.min_instances}, max {d.settings.max_instances})
        </dd>
        <dt>GPU</dt>
        <dd>
          {d.config.num_gpus}× {d.config.gpu}, engine {d.config.engine}, batch {d.config.max_batch_size}
        </dd>
        <dt>Weights</dt>
        <dd>
          {d.config.hf ? `${d.config.hf.repo}${d.config.hf.revision ? `@${d.config.hf.revision}` : ""}${d.config.hf.has_token ? " (token stored)" : ""}` : "–"}
        </dd>
        <dt>Created</dt>
        <dd>{time(d.created_at)}</dd>
      </dl>
      {d.status !== "deleted" ? <Settings d={d} onSaved={() => void dep.reload()} /> : null}

      <section aria-labelledby="replicas-title">
        <h2 id="replicas-title">Replicas</h2>
        <ErrorNote error={replicas.error} />
        {replicas.data && replicas.data.data.length === 0 ? <p className="empty">No replicas.</p> : null}
        {replicas.data && replicas.data.data.length > 0 ? (
          <table>
            <thead>
              <tr>
                <th scope="col">Replica</th>
                <th scope="col">Phase</th>
                <th scope="col">Why not ready</th>
                <th scope="col">Node</th>
                <th scope="col">GPU</th>
                <th scope="col">Since</th>
                <th scope="col">Heartbeat</th>
                <th scope="col">Load</th>
                <th scope="col">Restarts</th>
              </tr>
            </thead>
            <tbody>
              {replicas.data.data.map((r) => (
                <tr key={r.replica_id}>
                  <td>
                    <code>{r.replica_id}</code>
                  </td>
                  <td>
                    <Status value={r.phase} />
                  </td>
                  <td className="reason">{r.reason ?? "–"}</td>
                  <td>{r.node ?? "–"}</td>
                  <td>{r.gpu ? `${r.num_gpus ?? 1}× ${r.gpu}` : "–"}</td>
                  <td>{ago(r.since)}</td>
                  <td>{ago(r.last_heartbeat)}</td>
                  <td>{r.load ? `${r.load.running} running, ${r.load.waiting} waiting` : "–"}</td>
                  <td>{r.restarts}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </section>

      <div className="columns">
        <section aria-labelledby="events-title">
          <h2 id="events-title">Events</h2>
          <ol className="events">
            {events.map((e) => (
              <li key={e.id}>
                <time dateTime={e.created_at}>{time(e.created_at)}</time>{" "}
                {e.from_status && e.from_status !== e.to_status ? (
                  <>
                    <Status value={e.from_status} /> →{" "}
                  </>
                ) : null}
                <Status value={e.to_status} /> {e.reason ? <span className="reason">{e.reason}</span> : null}
              </li>
            ))}
          </ol>
        </section>
        <section aria-labelledby="stats-title">
          <h2 id="stats-title">Last hour</h2>
          {stats.data ? (
            <dl className="facts">
              <dt>Requests</dt>
              <dd>
                {stats.data.requests} ({stats.data.errors} errors)
              </dd>
              <dt>Tokens</dt>
              <dd>
                {stats.data.input_tokens} in, {stats.data.output_tokens} out
              </dd>
              <dt>Latency</dt>
              <dd>
                avg {stats.data.avg_time} ms, p95 {stats.data.avg95_time} ms, p99 {stats.data.p99_time} ms
              </dd>
              <dt>First token</dt>
              <dd>avg {stats.data.avg_ttft} ms</dd>
            </dl>
          ) : (
            <ErrorNote error={stats.error} />
          )}
        </section>
      </div>
      {d.status !== "deleted" ? <Logs id={id} /> : null}
    </article>
  );
}
