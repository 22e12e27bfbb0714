/**
 * `infera deploy …`: the deploy API from the command line — create, list, get, update,
 * stop, start, delete; and what happens to a deployment: watch, events, replicas, logs, stats.
 */
import type { Command } from "commander";
import { Option } from "commander";
import pc from "picocolors";
import type { Deployment, DeploymentEvent, Page, Replicas } from "../api-types.ts";
import { Client } from "../client.ts";
import { CliError, EXIT } from "../exit-codes.ts";
import { ago, fields, status, table } from "../output.ts";
import { commaList, intIn, type Context } from "../context.ts";
import { eventLine, watchDeployment } from "../watch.ts";

const path = (id: string, rest = "") => `/deploy/${encodeURIComponent(id)}${rest}`;

function replicasTable(r: Replicas): string {
  return table(
    ["REPLICA", "PHASE", "NODE", "GPU", "SINCE", "HEARTBEAT", "LOAD", "RESTARTS", "REASON"],
    r.data.map((x) => [
      x.replica_id,
      status(x.phase),
      x.node,
      x.gpu ? `${x.num_gpus ?? 1}× ${x.gpu}` : null,
      x.since ? ago(x.since) : null,
      x.last_heartbeat ? `${ago(x.last_heartbeat)} ago` : null,
      x.load ? `${x.load.running} run / ${x.load.waiting} wait` : null,
      x.restarts,
      x.reason,
    ]),
  );
}

function deploymentFields(d: Deployment): string {
  return fields([
    ["id", d.deploy_id],
    ["model", `${d.model_name}:${d.version}`],
    ["status", status(d.status)],
    ["fail reason", d.fail_reason],
    ["replicas", `${d.instances.running} running, ${d.instances.pending} pending`],
    ["gpu", `${d.config.num_gpus}× ${d.config.gpu}`],
    ["engine", d.config.engine],
    ["profile", d.config.profile ?? null],
    ["max batch size", d.config.max_batch_size],
    [
      "weights",
      d.config.hf ? `${d.config.hf.repo}${d.config.hf.revision ? `@${d.config.hf.revision}` : ""}${d.config.hf.has_token ? " (token stored)" : ""}` : null,
    ],
    ["image", d.config.container_image],
    ["extra args", d.config.extra_args.join(" ")],
    ["instances", `min ${d.settings.min_instances}, max ${d.settings.max_instances}`],
    ["created", `${d.created_at} (${ago(d.created_at)} ago)`],
  ]);
}

interface CreateOptions {
  model: string;
  gpu: string;
  numGpus?: number;
  maxBatchSize?: number;
  engine?: string;
  profile?: string;
  hfRepo?: string;
  hfRevision?: string;
  hfTokenEnv?: string;
  image?: string;
  arg?: string[];
  min?: number;
  max?: number;
  watch?: boolean;
  timeout: number;
}

export function registerDeployCommands(program: Command, ctx: (cmd: Command) => Context): void {
  const deploy = program.command("deploy").description("Deployments: create and change them, watch them come up, read their events, replicas, logs and stats.");

  deploy
    .command("create")
    .description("Deploy a model; prints its deploy id at once (--watch: then follows it until it runs).")
    .requiredOption("--model <name>", "the model's name (stored as <tenant>/<name>)")
    .requiredOption("--gpu <type>", "a GPU type the cluster offers (see 'infera deploy gpus')")
    .option("--num-gpus <n>", "GPUs per replica", intIn(1, 8))
    .option("--max-batch-size <n>", "requests one replica runs at once", intIn(1, 256))
    .addOption(new Option("--engine <engine>", "the inference engine").choices(["vllm", "tgi"]))
    .option("--hf-repo <repo>", "Hugging Face repository of the weights")
    .option("--hf-revision <rev>", "its revision (branch, tag or commit)")
    .option("--hf-token-env <VAR>", "read a Hugging Face token from this environment variable (stored sealed; never printed)")
    .option("--profile <name>", "the engine profile (its image, allowed arguments, limits); default: the one named like --engine")
    .option("--image <image>", "container image instead of the profile's (admin keys, or a tenant granted it)")
    .option("--arg <arg...>", "extra engine arguments")
    .option("--min <n>", "fewest replicas (0: scale to zero when idle)", intIn(0, 64))
    .option("--max <n>", "most replicas", intIn(1, 64))
    .option("--watch", "follow it until it runs or fails")
    .option("--timeout <seconds>", "with --watch: give up after this long", intIn(1, 86_400), 900)
    .action(async (o: CreateOptions, cmd: Command) => {
      const c = ctx(cmd);
      if (o.min !== undefined && o.max !== undefined && o.min > o.max) throw new CliError(`--min (${o.min}) is more than --max (${o.max}).`, EXIT.usage);
      if ((o.hfRevision || o.hfTokenEnv) && !o.hfRepo) throw new CliError("--hf-revision and --hf-token-env need --hf-repo.", EXIT.usage);
      let token: string | undefined;
      if (o.hfTokenEnv) {
        token = c.env[o.hfTokenEnv];
        if (!token) throw new CliError(`--hf-token-env: the environment variable ${o.hfTokenEnv} is not set.`, EXIT.usage);
      }
      const settings = o.min !== undefined || o.max !== undefined ? { min_instances: o.min, max_instances: o.max } : undefined;
      const body = {
        model_name: o.model,
        gpu: o.gpu,
        num_gpus: o.numGpus,
        max_batch_size: o.maxBatchSize,
        engine: o.engine,
        profile: o.profile,
        hf: o.hfRepo ? { repo: o.hfRepo, revision: o.hfRevision, token } : undefined,
        container_image: o.image,
        extra_args: o.arg,
        settings,
      };
      const client = c.client();
      const created = await client.request<{ deploy_id: string }>("POST", "/deploy/llm", body);
      if (!o.watch) {
        c.out.result(created, () => `Created ${pc.bold(created.deploy_id)}. Follow it with: infera deploy watch ${created.deploy_id}`);
        return;
      }
      if (c.out.json) c.out.line(JSON.stringify(created));
      else c.out.line(`Created ${pc.bold(created.deploy_id)}.`);
      c.setExit(await watchDeployment(client, created.deploy_id, c.out, { timeoutS: o.timeout, live: process.stderr.isTTY === true }));
    });

  deploy
    .command("list")
    .description("Your deployments (deleted ones only when asked for by --status).")
    .option("--status <list>", "comma list of statuses", commaList)
    .action(async (o: { status?: string[] }, cmd: Command) => {
      const c = ctx(cmd);
      const list = await c.client().request<Deployment[]>("GET", "/deploy/list", undefined, { status: o.status?.join(",") });
      c.out.result(list, () =>
        table(
          ["ID", "MODEL", "VERSION", "STATUS", "REPLICAS", "GPU", "ENGINE", "AGE"],
          list.map((d) => [
            d.deploy_id,
            d.model_name,
            d.version,
            status(d.status),
            `${d.instances.running}/${d.instances.running + d.instances.pending}`,
            `${d.config.num_gpus}× ${d.config.gpu}`,
            d.config.engine,
            ago(d.created_at),
          ]),
        ),
      );
    });

  deploy
    .command("get")
    .description("One deployment: config, settings, status and its replicas.")
    .argument("<id>", "deploy id")
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const c = ctx(cmd);
      const d = await c.client().request<Deployment>("GET", path(id));
      if (c.out.json) {
        c.out.result(d, () => "");
        return;
      }
      const r = await c.client().request<Replicas>("GET", path(id, "/replicas"));
      c.out.result(d, () => `${deploymentFields(d)}\n\n${replicasTable(r)}`);
    });

  deploy
    .command("update")
    .description("Change how many replicas it may have (its config is immutable).")
    .argument("<id>", "deploy id")
    .option("--min <n>", "fewest replicas (0: scale to zero when idle)", intIn(0, 64))
    .option("--max <n>", "most replicas", intIn(1, 64))
    .action(async (id: string, o: { min?: number; max?: number }, cmd: Command) => {
      const c = ctx(cmd);
      if (o.min === undefined && o.max === undefined) throw new CliError("Nothing to change: give --min and/or --max.", EXIT.usage);
      if (o.min !== undefined && o.max !== undefined && o.min > o.max) throw new CliError(`--min (${o.min}) is more than --max (${o.max}).`, EXIT.usage);
      const d = await c.client().request<Deployment>("PUT", path(id), { settings: { min_instances: o.min, max_instances: o.max } });
      c.out.result(d, () => `Updated ${d.deploy_id}: min ${d.settings.min_instances}, max ${d.settings.max_instances} replicas.`);
    });

  for (const [verb, past, method, suffix] of [
    ["stop", "Stopped", "POST", "/stop"],
    ["start", "Started", "POST", "/start"],
    ["delete", "Deleted", "DELETE", ""],
  ] as const) {
    deploy
      .command(verb)
      .description(
        verb === "stop"
          ? "Stop a running deployment (its replicas go; it can be started again)."
          : verb === "start"
            ? "Start a stopped or failed deployment."
            : "Delete a deployment (its replicas and stored token go; its history stays).",
      )
      .argument("<id>", "deploy id")
      .action(async (id: string, _o: unknown, cmd: Command) => {
        const c = ctx(cmd);
        const d = await c.client().request<Deployment>(method, path(id, suffix));
        c.out.result(d, () => `${past} ${d.deploy_id} (now ${status(d.status)}).`);
      });
  }

  deploy
    .command("watch")
    .description("Follow a deployment's events until it runs (exit 0), fails or is stopped (6), or --timeout passes (7).")
    .argument("<id>", "deploy id")
    .option("--timeout <seconds>", "give up after this long", intIn(1, 86_400), 900)
    .action(async (id: string, o: { timeout: number }, cmd: Command) => {
      const c = ctx(cmd);
      c.setExit(await watchDeployment(c.client(), id, c.out, { timeoutS: o.timeout, live: process.stderr.isTTY === true }));
    });

  deploy
    .command("events")
    .description("Its lifecycle history, oldest first.")
    .argument("<id>", "deploy id")
    .option("--limit <n>", "events per page", intIn(1, 100), 100)
    .option("--after <event id>", "start after this event")
    .option("--all", "every page, not just the first")
    .action(async (id: string, o: { limit: number; after?: string; all?: boolean }, cmd: Command) => {
      const c = ctx(cmd);
      const events: DeploymentEvent[] = [];
      let after = o.after;
      let page: Page<DeploymentEvent>;
      do {
        page = await c.client().request<Page<DeploymentEvent>>("GET", path(id, "/events"), undefined, { limit: o.limit, after });
        events.push(...page.data);
        after = page.last_id ?? after;
      } while (o.all && page.has_more);
      const result = o.all ? { object: "list", data: events, first_id: events[0]?.id ?? null, last_id: events.at(-1)?.id ?? null, has_more: false } : page;
      c.out.result(result, () => {
        const lines = events.map(eventLine);
        if (!o.all && page.has_more) lines.push(pc.dim(`… more: infera deploy events ${id} --after ${page.last_id} (or --all)`));
        return lines.length ? lines.join("\n") : pc.dim("(no events)");
      });
    });

  deploy
    .command("replicas")
    .description("Each replica: phase, node, GPU, since when, last heartbeat, load and why it is not ready.")
    .argument("<id>", "deploy id")
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const c = ctx(cmd);
      const r = await c.client().request<Replicas>("GET", path(id, "/replicas"));
      c.out.result(r, () => replicasTable(r));
    });

  deploy
    .command("stats")
    .description("Requests, tokens, latency and errors over a window (the hosted provider's stats).")
    .argument("<id>", "deploy id")
    .option("--from <time>", "start: unix seconds or now-relative (now-5h; units s, m, h, d, w, M)", "now-1h")
    .option("--to <time>", "end, like --from", "now")
    .action(async (id: string, o: { from: string; to: string }, cmd: Command) => {
      const c = ctx(cmd);
      const s = await c.client().request<Record<string, number>>("GET", path(id, "/stats"), undefined, { from: o.from, to: o.to });
      c.out.result(s, () =>
        fields([
          ["window", `${new Date(s.from! * 1000).toISOString()} → ${new Date(s.to! * 1000).toISOString()}`],
          ["requests", s.requests],
          ["errors", s.errors],
          ["tokens", `${s.input_tokens} in, ${s.output_tokens} out (${s.total_tokens})`],
          ["latency", `avg ${s.avg_time} ms, p50 ${s.p50_time} ms, p95 ${s.avg95_time} ms, p99 ${s.p99_time} ms`],
          ["first token", `avg ${s.avg_ttft} ms, p95 ${s.avg95_ttft} ms`],
          ["cost", `$${Number(s.cost_usd).toFixed(6)}`],
        ]),
      );
    });

  deploy
    .command("logs")
    .description("The engine's and the worker agent's log lines of its replicas.")
    .argument("<id>", "deploy id")
    .option("--replica <replica id>", "one replica (see 'infera deploy replicas')")
    .option("--tail <n>", "lines from the end of each log to start with", intIn(0, 10_000), 100)
    .option("-f, --follow", "keep printing new lines (Ctrl-C stops)")
    .action(async (id: string, o: { replica?: string; tail: number; follow?: boolean }, cmd: Command) => {
      const c = ctx(cmd);
      const abort = new AbortController();
      const onSigint = () => abort.abort();
      process.once("SIGINT", onSigint);
      try {
        const res = await c
          .client()
          .raw(
            "GET",
            path(id, "/logs"),
            undefined,
            { replica: o.replica, tail: o.tail, follow: o.follow === true, format: "ndjson" },
            { signal: abort.signal, stream: true },
          );
        if (!res.ok) throw await Client.failure(res);
        let buf = "";
        const decoder = new TextDecoder();
        try {
          for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
            buf += decoder.decode(chunk, { stream: true });
            const lines = buf.split("\n");
            buf = lines.pop() ?? "";
            for (const l of lines) printLogLine(c, l);
          }
        } catch (err) {
          if (!abort.signal.aborted) throw new CliError(`The log stream broke off: ${(err as Error).message}`, EXIT.unavailable);
        }
        if (buf) printLogLine(c, buf);
      } catch (err) {
        if (!abort.signal.aborted) throw err;
      } finally {
        process.off("SIGINT", onSigint);
      }
    });

  deploy
    .command("gpus")
    .description("The GPU types the cluster offers, and how many are in use.")
    .action(async (_o: unknown, cmd: Command) => {
      const c = ctx(cmd);
      const g = await c
        .client()
        .request<{ gpus: { gpu: string; total: number | null; in_use: number; available: number | null }[] }>("GET", "/deploy/llm/gpu_availability");
      c.out.result(g, () =>
        table(
          ["GPU", "TOTAL", "IN USE", "AVAILABLE"],
          g.gpus.map((x) => [x.gpu, x.total, x.in_use, x.available]),
        ),
      );
    });
}

function printLogLine(c: Context, raw: string): void {
  if (!raw.trim()) return;
  if (c.out.json) {
    c.out.line(raw);
    return;
  }
  let v: { replica_id?: string; source?: string; line?: string; error?: { message: string } };
  try {
    v = JSON.parse(raw) as typeof v;
  } catch {
    c.out.line(raw);
    return;
  }
  if (v.error) throw new CliError(`The log stream ended with an error: ${v.error.message}`, EXIT.unavailable);
  c.out.line(`${pc.cyan(v.replica_id ?? "")} ${pc.dim((v.source ?? "").padEnd(6))} ${v.line ?? ""}`);
}
