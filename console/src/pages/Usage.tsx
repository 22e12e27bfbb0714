/** Usage per model, per key and per day over a window, as charts with the numbers in tables beside them. */
import { useMemo, useState } from "react";
import { api } from "../api.ts";
import { BarChart } from "../BarChart.tsx";
import type { ApiKey, Tenant, Usage, UsageRow } from "../types.ts";
import { ErrorNote, Field, usePoll } from "../ui.tsx";

const PROMPT = "#3b6fd6";
const COMPLETION = "#e08a1e";

function days(n: number): string[] {
  const out: string[] = [];
  for (let i = n - 1; i >= 0; i--) out.push(new Date(Date.now() - i * 86_400_000).toISOString().slice(0, 10));
  return out;
}

function Breakdown({ title, rows, label, fill, wide }: { title: string; rows: UsageRow[]; label: (r: UsageRow) => string; fill?: string[]; wide?: boolean }) {
  const { labels, series } = useMemo(() => {
    const byLabel = new Map(rows.map((r) => [label(r), r]));
    const labels = fill ?? rows.map(label);
    return {
      labels,
      series: [
        { label: "prompt tokens", values: labels.map((l) => byLabel.get(l)?.prompt_tokens ?? 0), colour: PROMPT },
        { label: "completion tokens", values: labels.map((l) => byLabel.get(l)?.completion_tokens ?? 0), colour: COMPLETION },
      ],
    };
  }, [rows, label, fill]);
  return (
    <section className={wide ? "panel wide" : "panel"} aria-label={title}>
      <BarChart title={title} labels={labels} series={series} horizontal={!fill} />
      <div className="table-scroll">
        <table className="compact">
          <thead>
            <tr>
              <th scope="col">{title.replace(/^Tokens per (\w)/, (_m, c: string) => c.toUpperCase())}</th>
              <th scope="col">Requests</th>
              <th scope="col">Prompt</th>
              <th scope="col">Completion</th>
              <th scope="col">Cost</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={label(r)}>
                <td>{label(r)}</td>
                <td>{r.requests}</td>
                <td>{r.prompt_tokens}</td>
                <td>{r.completion_tokens}</td>
                <td>${r.cost_usd.toFixed(6)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

const byModel = (r: UsageRow) => r.model ?? "";
const byDay = (r: UsageRow) => r.day ?? "";

export function UsagePage() {
  const [window, setWindow] = useState(30);
  const [tenant, setTenant] = useState("");
  const tenants = usePoll(() => api<{ data: Tenant[] }>("GET", "/admin/tenants"), 0);
  // Admin keys can name the keys; others see key ids.
  const keys = usePoll(() => api<{ data: ApiKey[] }>("GET", "/admin/api-keys"), 0);
  const keyNames = keys.data?.data;
  const byKey = useMemo(
    () => (r: UsageRow) => {
      const k = keyNames?.find((x) => x.id === r.key_id);
      return k ? `${k.name} (${k.prefix})` : (r.key_id ?? "");
    },
    [keyNames],
  );
  const from = Math.floor((Date.now() - window * 86_400_000) / 1000);
  const q = { from, tenant_id: tenant || undefined };
  const model = usePoll(() => api<Usage>("GET", "/v1/usage", undefined, { ...q, group_by: "model" }), 15_000, [window, tenant]);
  const key = usePoll(() => api<Usage>("GET", "/v1/usage", undefined, { ...q, group_by: "key" }), 15_000, [window, tenant]);
  const day = usePoll(() => api<Usage>("GET", "/v1/usage", undefined, { ...q, group_by: "day" }), 15_000, [window, tenant]);
  const fill = useMemo(() => days(window), [window]);
  const total = model.data?.total;
  return (
    <section aria-labelledby="usage-title">
      <div className="heading">
        <h1 id="usage-title">Usage</h1>
        <div className="row">
          {tenants.data ? (
            <Field id="usage-tenant" label="Tenant">
              <select id="usage-tenant" value={tenant} onChange={(e) => setTenant(e.target.value)}>
                <option value="">Your own</option>
                {tenants.data.data.map((t) => (
                  <option key={t.id} value={t.id}>
                    {t.name}
                  </option>
                ))}
              </select>
            </Field>
          ) : null}
          <Field id="usage-window" label="Window">
            <select id="usage-window" value={window} onChange={(e) => setWindow(Number(e.target.value))}>
              <option value={7}>Last 7 days</option>
              <option value={30}>Last 30 days</option>
              <option value={90}>Last 90 days</option>
            </select>
          </Field>
        </div>
      </div>
      <ErrorNote error={model.error ?? key.error ?? day.error} />
      {total ? (
        <p className="summary" data-testid="usage-total">
          {total.requests} {total.requests === 1 ? "request" : "requests"} · {total.prompt_tokens} prompt + {total.completion_tokens} completion tokens · $
          {total.cost_usd.toFixed(6)}
        </p>
      ) : null}
      <div className="grid">
        {day.data ? <Breakdown title="Tokens per day" rows={day.data.data} label={byDay} fill={fill} wide /> : null}
        {model.data ? <Breakdown title="Tokens per model" rows={model.data.data} label={byModel} /> : null}
        {key.data ? <Breakdown title="Tokens per key" rows={key.data.data} label={byKey} /> : null}
      </div>
    </section>
  );
}
