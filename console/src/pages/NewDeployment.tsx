/**
 * The deploy form: GPU types (with what is free), engines and the operator's engine profiles
 * as the cluster offers them;
 * the API's message appears next to the field it names, and nothing is created until it
 * accepts the whole form.
 */
import { type FormEvent, useState } from "react";
import { api } from "../api.ts";
import { navigate } from "../App.tsx";
import type { Engine, Gpu, Profile } from "../types.ts";
import { ErrorNote, Field, errorFor, usePoll } from "../ui.tsx";

const FIELDS = ["model_name", "gpu", "num_gpus", "max_batch_size", "engine", "hf", "settings", "container_image", "extra_args", "profile"];

export function NewDeployment() {
  const gpus = usePoll(() => api<{ gpus: Gpu[] }>("GET", "/deploy/llm/gpu_availability"), 0);
  const engines = usePoll(() => api<{ engines: Engine[] }>("GET", "/deploy/llm/engines"), 0);
  const profiles = usePoll(() => api<{ data: Profile[] }>("GET", "/deploy/llm/profiles"), 0);
  const [f, setF] = useState({ model: "", gpu: "", numGpus: "1", batch: "96", engine: "", profile: "", repo: "", revision: "", token: "", min: "1", max: "1" });
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const set = (k: keyof typeof f) => (e: { target: { value: string } }) => setF({ ...f, [k]: e.target.value });
  const gpu = f.gpu || gpus.data?.gpus[0]?.gpu || "";
  const engine = f.engine || engines.data?.engines.find((e) => e.default)?.engine || "";
  // The engine's profiles; the API's default is the one named like the engine.
  const offered = profiles.data?.data.filter((p) => p.engine === engine) ?? [];
  const profile = offered.find((p) => p.name === f.profile) ?? offered.find((p) => p.name === engine) ?? offered[0];

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body = {
        model_name: f.model.trim(),
        gpu,
        num_gpus: Number(f.numGpus),
        max_batch_size: Number(f.batch),
        engine,
        ...(profile ? { profile: profile.name } : {}),
        hf: f.repo.trim() ? { repo: f.repo.trim(), revision: f.revision.trim() || null, token: f.token || null } : null,
        settings: { min_instances: Number(f.min), max_instances: Number(f.max) },
      };
      const created = await api<{ deploy_id: string }>("POST", "/deploy/llm", body);
      navigate(`#/deployments/${created.deploy_id}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  const err = (...p: string[]) => errorFor(error, ...p);
  const described = (id: string, ...p: string[]) => ({
    "aria-invalid": err(...p) ? true : undefined,
    "aria-describedby": err(...p) ? `${id}-error` : `${id}-hint`,
  });
  const unplaced = error && !FIELDS.some((p) => err(p));

  return (
    <section aria-labelledby="new-title">
      <h1 id="new-title">Deploy a model</h1>
      <form className="form" onSubmit={submit} noValidate>
        <Field id="model" label="Model name" error={err("model_name")} hint="Stored as <your tenant>/<name>; each deploy of it is a new version.">
          <input id="model" required value={f.model} onChange={set("model")} {...described("model", "model_name")} />
        </Field>
        <div className="row">
          <Field id="gpu" label="GPU type" error={err("gpu")} hint="What this cluster offers, and how many are free.">
            <select id="gpu" value={gpu} onChange={set("gpu")} {...described("gpu", "gpu")}>
              {gpus.data?.gpus.map((g) => (
                <option key={g.gpu} value={g.gpu}>
                  {g.gpu}
                  {g.available !== null ? ` (${g.available} of ${g.total} free)` : ""}
                </option>
              ))}
            </select>
          </Field>
          <Field id="num-gpus" label="GPUs per replica" error={err("num_gpus")}>
            <input id="num-gpus" type="number" min={1} max={8} value={f.numGpus} onChange={set("numGpus")} {...described("num-gpus", "num_gpus")} />
          </Field>
          <Field id="engine" label="Engine" error={err("engine")} hint={engines.data?.engines.find((x) => x.engine === engine)?.description}>
            <select id="engine" value={engine} onChange={set("engine")} {...described("engine", "engine")}>
              {engines.data?.engines.map((x) => (
                <option key={x.engine} value={x.engine}>
                  {x.name}
                </option>
              ))}
            </select>
          </Field>
          <Field id="profile" label="Engine profile" error={err("profile")} hint={profile ? profileHint(profile) : "The operator offers none for this engine."}>
            <select id="profile" value={profile?.name ?? ""} onChange={set("profile")} {...described("profile", "profile")}>
              {offered.map((p) => (
                <option key={p.name} value={p.name}>
                  {p.name}
                </option>
              ))}
            </select>
          </Field>
          <Field id="batch" label="Max batch size" error={err("max_batch_size")} hint="Requests one replica runs at once.">
            <input id="batch" type="number" min={1} max={256} value={f.batch} onChange={set("batch")} {...described("batch", "max_batch_size")} />
          </Field>
        </div>
        <fieldset>
          <legend>Weights (Hugging Face)</legend>
          <div className="row">
            <Field id="repo" label="Repository" error={err("hf.repo", "hf")} hint="e.g. meta-llama/Meta-Llama-3-8B-Instruct">
              <input id="repo" value={f.repo} onChange={set("repo")} {...described("repo", "hf.repo", "hf")} />
            </Field>
            <Field id="revision" label="Revision" error={err("hf.revision")} hint="Branch, tag or commit (optional).">
              <input id="revision" value={f.revision} onChange={set("revision")} {...described("revision", "hf.revision")} />
            </Field>
            <Field id="token" label="Access token" error={err("hf.token")} hint="Stored sealed; never shown again.">
              <input id="token" type="password" autoComplete="off" value={f.token} onChange={set("token")} {...described("token", "hf.token")} />
            </Field>
          </div>
        </fieldset>
        <div className="row">
          <Field id="min-instances" label="Min replicas" error={err("settings.min_instances")} hint="0 scales to zero when idle.">
            <input
              id="min-instances"
              type="number"
              min={0}
              max={64}
              value={f.min}
              onChange={set("min")}
              {...described("min-instances", "settings.min_instances")}
            />
          </Field>
          <Field id="max-instances" label="Max replicas" error={err("settings.max_instances")}>
            <input
              id="max-instances"
              type="number"
              min={1}
              max={64}
              value={f.max}
              onChange={set("max")}
              {...described("max-instances", "settings.max_instances")}
            />
          </Field>
        </div>
        {unplaced ? <ErrorNote error={error} /> : null}
        <ErrorNote error={gpus.error ?? engines.error ?? profiles.error} />
        <button type="submit" disabled={busy}>
          {busy ? "Deploying…" : "Deploy"}
        </button>
      </form>
    </section>
  );
}

/** What a profile allows, in a line. */
function profileHint(p: Profile): string {
  const gpus = p.gpu_types.length > 0 ? p.gpu_types.join(", ") : "any GPU type";
  return `${p.description ?? p.engine}: ${gpus}, up to ${p.max_num_gpus} GPUs and ${p.max_instances} replicas.`;
}
