/**
 * `infera deploy watch`: follows a deployment's events until it is `running` (exit 0) or
 * `failed`, `stopped` or `deleted` (exit 6), or --timeout passes (exit 7). Each event is a
 * line on stdout as it happens; on a terminal a live status line (ora) on stderr shows the
 * lifecycle step, how many replicas are ready and why the others are not. With --json the
 * events are NDJSON and the last line is the deployment.
 */
import ora, { type Ora } from "ora";
import pc from "picocolors";
import type { Deployment, DeploymentEvent, Page, Replicas } from "./api-types.ts";
import type { Client } from "./client.ts";
import { CliError, EXIT, type ExitCode } from "./exit-codes.ts";
import { clock, status, type Output } from "./output.ts";

const STEPS = ["initializing", "downloading", "deploying", "running"];
const POLL_MS = 500;
const TERMINAL = ["running", "failed", "stopped", "deleted"];

export interface WatchOptions {
  timeoutS: number;
  /** Show the live status line (a terminal on stderr). */
  live: boolean;
}

export function eventLine(e: DeploymentEvent): string {
  const move = e.from_status === e.to_status ? status(e.to_status) : `${e.from_status ? `${status(e.from_status)} → ` : ""}${status(e.to_status)}`;
  return `${pc.dim(clock(e.created_at))}  ${move}${e.reason ? `  ${e.reason}` : ""}`;
}

/** `deploying [3/4] · 0/1 replicas ready · starting: the engine is not healthy yet`. */
export function statusLine(d: Deployment, r: Replicas | undefined): string {
  const step = STEPS.indexOf(d.status);
  const parts = [`${status(d.status)}${step >= 0 ? pc.dim(` [${step + 1}/${STEPS.length}]`) : ""}`];
  if (r) {
    const ready = r.data.filter((x) => x.ready).length;
    const wanted = Math.max(r.data.length, d.instances.running + d.instances.pending);
    parts.push(`${ready}/${wanted} replicas ready`);
    const waiting = r.data.find((x) => !x.ready);
    if (waiting) parts.push(`${waiting.phase}${waiting.reason ? `: ${waiting.reason}` : ""}`);
  }
  return parts.join(pc.dim(" · "));
}

export async function watchDeployment(client: Client, id: string, out: Output, o: WatchOptions): Promise<ExitCode> {
  const started = Date.now();
  const spinner: Ora | undefined = o.live && !out.json ? ora({ stream: process.stderr, text: "watching…" }).start() : undefined;
  const print = (text: string) => {
    if (spinner) {
      spinner.clear();
      out.line(text);
      spinner.render();
    } else out.line(text);
  };
  let after: string | undefined;
  /** Every event since the last one seen, a page at a time. */
  const printEvents = async () => {
    for (;;) {
      const page = await client.request<Page<DeploymentEvent>>("GET", `/deploy/${encodeURIComponent(id)}/events`, undefined, { after, limit: 100 });
      for (const e of page.data) print(out.json ? JSON.stringify({ event: e }) : eventLine(e));
      after = page.last_id ?? after;
      if (!page.has_more) break;
    }
  };
  try {
    for (;;) {
      await printEvents();
      const d = await client.request<Deployment>("GET", `/deploy/${encodeURIComponent(id)}`);
      // It may have moved since the events were read: the move that ended the watch is printed too.
      if (TERMINAL.includes(d.status)) await printEvents();
      const replicas =
        d.status === "running" || STEPS.includes(d.status) ? await client.request<Replicas>("GET", `/deploy/${encodeURIComponent(id)}/replicas`) : undefined;
      if (spinner) spinner.text = statusLine(d, replicas);
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      if (d.status === "running") {
        if (out.json) out.line(JSON.stringify({ deployment: d }));
        else if (spinner)
          spinner.succeed(`${d.deploy_id} is running (${d.instances.running} replica${d.instances.running === 1 ? "" : "s"} ready) after ${secs}s`);
        else out.line(`${d.deploy_id} is running after ${secs}s`);
        return EXIT.ok;
      }
      if (d.status === "failed" || d.status === "stopped" || d.status === "deleted") {
        const why = d.status === "failed" ? `failed: ${d.fail_reason ?? "no reason given"}` : `was ${d.status}`;
        if (out.json) out.line(JSON.stringify({ deployment: d }));
        else if (spinner) spinner.fail(`${d.deploy_id} ${why}`);
        else out.warn(`${d.deploy_id} ${why}`);
        return EXIT.deploymentFailed;
      }
      if (Date.now() - started > o.timeoutS * 1000) {
        const msg = `${d.deploy_id} is still ${d.status} after ${o.timeoutS}s`;
        if (spinner) spinner.fail(msg);
        throw new CliError(msg, EXIT.timeout);
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  } finally {
    if (spinner?.isSpinning) spinner.stop();
  }
}
